"""Grey pictures from files (PNG frames and masks of the ESS layout, labelled image folders),
checked before they are decoded: libpng reports a damaged PNG on stderr itself, beside the one
line that evtools gives for it; and pictures written to files, whose failures are errors."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError, EvtoolsError, InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_grey(path: Path) -> np.ndarray:
    """(H, W) uint8 grey values of a picture file (colour as luma, 16 bits scaled to 8)."""
    import cv2  # imported on first use: it costs a noticeable part of a CLI start

    return _decoded(path, cv2.IMREAD_GRAYSCALE)


def read_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 class indices of a mask file, as stored: a grey conversion would read a
    16-bit class 300 as 1 and a colour-coded mask as luma values. Three equal colour channels
    (and any alpha) are one; a colour mask, or a value that is no whole number from 0 to 255, is
    refused."""
    import cv2

    mask = _decoded(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3:
        colour = mask[..., :3]  # an alpha channel, opaque or not, is no part of the class
        if (colour != colour[..., :1]).any():
            raise InputError(path, "a colour mask (its channels differ): give class indices, one channel "
                                   "(255: ignored)")
        mask = colour[..., 0]
    if mask.dtype != np.uint8:  # 16 bits, or a TIFF's other integers and floats
        values = mask.astype(np.float64)
        outside = values[(values < 0) | (values > 255) | (values != np.floor(values))]  # NaN too
        if outside.size:
            raise InputError(path, f"holds the value {outside.flat[0]:g}: a class index is a whole number from 0 "
                                   "to 254 (255: ignored)")
        mask = mask.astype(np.uint8)
    return mask


def _decoded(path: Path, flags: int) -> np.ndarray:
    """A picture file decoded by OpenCV; a PNG's chunks are checked against their CRCs first, so
    that damage is one error naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(path, f"unreadable ({err.strerror or err})") from None
    if data.startswith(PNG_SIGNATURE):
        problem = _png_damage(data)
        if problem is not None:
            raise CorruptFileError(path, f"damaged PNG image ({problem})")
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if image is None:
        raise CorruptFileError(path, "not an image OpenCV can read")
    return image


def grey_from_bgr(pixels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 BT.601 luma of (H, W, 3 or 4) uint8 BGR(A) pixels, as OpenCV's and DV's grey."""
    return np.rint(pixels[..., :3].astype(np.float32) @ np.float32([0.114, 0.587, 0.299])).astype(np.uint8)


def write_picture(path: Path, image: np.ndarray) -> Path:
    """Writes ``image`` in the format its suffix names (any OpenCV writes). cv2.imwrite returns
    False, silently, on a full disk or a folder it cannot write: the file is written here instead,
    so that such a failure is the operating system's error, and a format OpenCV lacks is one line."""
    import cv2

    try:
        encoded, data = cv2.imencode(Path(path).suffix, image)
    except cv2.error:  # no encoder for the suffix
        encoded = False
    if not encoded:
        raise EvtoolsError(f"{path}: OpenCV could not write this image format")
    Path(path).write_bytes(data.tobytes())
    return Path(path)


def _png_damage(data: bytes) -> str | None:
    """What is wrong with a PNG's chunks (length, type, data, CRC-32 of type and data), up to its
    IEND chunk; None when nothing is."""
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            break
        if zlib.crc32(data[position + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"chunk {kind.decode('latin-1')!r} at byte {position} fails its CRC"
        if kind == b"IEND":
            return None
        position = end
    return "cut short before its IEND chunk"
