"""evtools: event-camera recordings to cached tensors, pseudo-labels and EvDistill students."""

__version__ = "0.1.0"
