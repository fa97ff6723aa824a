"""The real recordings under ../shared/realdata/, read with the reader that fits each, checked
against the figures their READMEs give (counts, polarity balance, time and coordinate ranges).
Files of a format evtools has no reader for must be refused with UnknownFormatError.
N-MNIST binaries have no signature, so they are opened with format="nmnist"."""

from pathlib import Path

import numpy as np
import pytest

from evtools.errors import UnknownFormatError
from evtools.events import Events
from evtools.io import detect_format, open_recording

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
FILES = sorted(p for p in REALDATA.rglob("*") if p.is_file() and p.name != "README.md") if REALDATA.is_dir() else []

# name: (format, events, ON, OFF, first t, last t, x range, y range), from the READMEs
EXPECTED = {
    "ncars_sample_a.dat": ("dat", 2009, 1350, 659, 0, 99_952, (0, 77), (0, 41)),
    "ncars_sample_b.dat": ("dat", 4407, 1671, 2736, 0, 99_937, (0, 53), (1, 60)),
    "gen3_spinner_evt2.raw": ("evt2", 539_481, 367_855, 171_626, 1_317_888, 1_367_888, (60, 599), (18, 475)),
    "gen41_street_evt3.raw": ("evt3", 219_596, 115_532, 104_064, 11_718_656, 11_727_457, (0, 1279), (0, 719)),
    "nmnist_sample.bin": ("nmnist", 4325, None, None, 654, 311_175, (0, 33), (0, 33)),
    "dvxplorer_person.aedat4": ("aedat4", 111_954, 55_023, 56_931, 1605537493718345, 1605537494308262, (0, 319), (0, 239)),
}
EXPLICIT_FORMATS = {".bin": "nmnist"}


@pytest.mark.skipif(not FILES, reason=f"no real recordings under {REALDATA}")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_recording(path):
    format_name = EXPLICIT_FORMATS.get(path.suffix)
    if format_name is None:
        try:
            format_name = detect_format(path)
        except UnknownFormatError as err:
            assert path.name not in EXPECTED
            assert str(err) == (f"{path}: not a recording evtools can read (not HDF5, AEDAT4, a ROS bag, "
                                "Prophesee DAT or EVT2/EVT3, nor an ess_ddd17 directory; N-MNIST binaries have no "
                                "header: give --format nmnist)")
            pytest.skip(f"no evtools reader for {path.suffix} files")
    expected = EXPECTED[path.name]
    assert format_name == expected[0]
    with open_recording(path, format_name) as rec:
        events = Events.concatenate(list(rec.chunks(100_000)))
        assert rec.dropped_outside_sensor == 0
        assert len(events) == rec.n_events == expected[1]
        if expected[2] is not None:
            assert (int((events.p > 0).sum()), int((events.p < 0).sum())) == expected[2:4]
        assert (rec.t0_us, rec.t0_us + int(events.t[-1])) == expected[4:6]
        assert (int(events.x.min()), int(events.x.max())) == expected[6]
        assert (int(events.y.min()), int(events.y.max())) == expected[7]
        assert (np.diff(events.t) >= 0).all()
