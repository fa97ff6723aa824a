"""Every real recording under ../shared/realdata/ goes through format detection: a file whose
format evtools reads is read whole; the others (AEDAT4, Prophesee EVT2/EVT3/DAT, N-MNIST) must be
refused with UnknownFormatError, never misread as one of the supported layouts."""

from pathlib import Path

import pytest

from evtools.errors import UnknownFormatError
from evtools.io import detect_format, open_recording
from evtools.summary import summarize

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
FILES = sorted(p for p in REALDATA.rglob("*") if p.is_file() and p.name != "README.md") if REALDATA.is_dir() else []


@pytest.mark.skipif(not FILES, reason=f"no real recordings under {REALDATA}")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_recording(path):
    try:
        format_name = detect_format(path)
    except UnknownFormatError as err:
        assert str(err) == f"{path}: not a recording evtools can read (not HDF5, nor an ess_ddd17 directory)"
        pytest.skip(f"no evtools reader for {path.suffix} files")
    with open_recording(path, format_name) as recording:
        summary = summarize(recording)
    assert summary.n_events == recording.n_events > 0
