"""Parsing of option values shared by commands, failing with one-line EvtoolsErrors."""

from __future__ import annotations

import re

from evtools.errors import EvtoolsError
from evtools.windows import parse_duration


CAMERA_HELP = ("MVSEC camera: left or right; in a ROS bag also a topic namespace such as /dvs; in an AEDAT4 file "
               "of several event streams, one's camera (DAVIS346_00000499), module/output or stream id.")


class OptionError(EvtoolsError):
    """An option value that cannot be used."""


def duration_us(option: str, text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise OptionError(f"{option}: {err}") from None


def sensor_size(option: str, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not (0 < int(match[1]) <= 65535 and 0 < int(match[2]) <= 65535):
        raise OptionError(f"{option}: '{text}' is not a sensor size WxH with sides from 1 to 65535, such as 640x480")
    return int(match[1]), int(match[2])


def row_range(option: str, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match or int(match[1]) >= int(match[2]):
        raise OptionError(f"{option}: '{text}' is not a row range A:B with A < B, such as 0:200")
    return int(match[1]), int(match[2])
