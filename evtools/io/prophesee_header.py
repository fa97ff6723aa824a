"""The text header of Prophesee files (DAT, EVT2 and EVT3 .raw): lines starting with '%' before
the binary data, and the sensor geometry they give or imply."""

from __future__ import annotations

import re
from pathlib import Path

MAX_HEADER_BYTES = 1 << 16
# sensors named by the recording plugin, for headers without a geometry line (older files)
PLUGIN_GEOMETRY = (("gen41", (1280, 720)), ("imx636", (1280, 720)), ("gen4", (1280, 720)), ("gen3", (640, 480)))
ATIS_GEOMETRY = (304, 240)  # the sensor of DAT v2 files (N-CARS, ATIS)


def read_header(path: str | Path) -> tuple[dict[str, str], int]:
    """The header's "% key value" entries and the offset of the first byte after it."""
    entries: dict[str, str] = {}
    offset = 0
    with open(path, "rb") as handle:
        data = handle.read(MAX_HEADER_BYTES)
    while offset < len(data) and data[offset : offset + 1] == b"%":
        end = data.find(b"\n", offset)
        if end < 0:
            break
        line = data[offset + 1 : end].decode("latin-1").strip()
        key, _, value = line.partition(" ")
        entries[key] = value.strip()
        offset = end + 1
    return entries, offset


def evt_version(header: dict[str, str]) -> str | None:
    """"2.0" or "3.0" from an "evt" line or a "format EVT3;..." line."""
    if "evt" in header:
        return header["evt"]
    match = re.match(r"EVT(\d)", header.get("format", ""))
    return f"{match[1]}.0" if match else None


def geometry(header: dict[str, str], default: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """(width, height) from "geometry WxH", "format ...;width=W;height=H", or the plugin name."""
    if "geometry" in header:
        width, height = header["geometry"].lower().split("x")
        return int(width), int(height)
    fields = dict(part.split("=", 1) for part in header.get("format", "").split(";") if "=" in part)
    if "width" in fields and "height" in fields:
        return int(fields["width"]), int(fields["height"])
    plugin = header.get("plugin_name", "")
    for name, size in PLUGIN_GEOMETRY:
        if name in plugin:
            return size
    return default
