"""Representation kernels: Numba CPU kernels, numba.cuda kernels and the numpy references."""
