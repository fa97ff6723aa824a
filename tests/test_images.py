"""Picture files: grey frames and masks of class indices (labelled image folders, ESS masks),
read with exact values; a mask that is no class indices is one line naming the file."""

import cv2
import numpy as np
import pytest

from evtools.errors import InputError
from evtools.io.images import read_grey, read_mask

CLASSES = np.array([[0, 1, 2], [5, 254, 255]], np.uint8)


def written(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.mark.parametrize("name, pixels", [
    ("grey.png", CLASSES),
    ("three.png", np.dstack([CLASSES] * 3)),
    ("alpha.png", np.dstack([CLASSES] * 3 + [np.full_like(CLASSES, 255)])),  # an opaque alpha channel
    ("sixteen.png", CLASSES.astype(np.uint16)),
    ("float.tiff", CLASSES.astype(np.float32)),
])
def test_a_mask_is_read_as_its_class_indices(tmp_path, name, pixels):
    mask = read_mask(written(tmp_path / name, pixels))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, CLASSES)


@pytest.mark.parametrize("name, pixels, problem", [
    # read as grey, these had been class 1 and the luma 150
    ("sixteen.png", np.array([[0, 300]], np.uint16),
     "holds the value 300: a class index is a whole number from 0 to 254 (255: ignored)"),
    ("colour.png", np.dstack([CLASSES, CLASSES, CLASSES[::-1]]),
     "a colour mask (its channels differ): give class indices, one channel (255: ignored)"),
    ("half.tiff", np.array([[0, 1.5]], np.float32),
     "holds the value 1.5: a class index is a whole number from 0 to 254 (255: ignored)"),
    ("nan.tiff", np.array([[0, np.nan]], np.float32),
     "holds the value nan: a class index is a whole number from 0 to 254 (255: ignored)"),
    ("negative.tiff", np.array([[0, -2]], np.float32),
     "holds the value -2: a class index is a whole number from 0 to 254 (255: ignored)"),
])
def test_a_mask_of_no_class_indices_is_refused_naming_the_file(tmp_path, name, pixels, problem):
    path = written(tmp_path / name, pixels)
    with pytest.raises(InputError) as err:
        read_mask(path)
    assert str(err.value) == f"{path}: {problem}"


def test_a_frame_is_read_as_grey(tmp_path):
    np.testing.assert_array_equal(read_grey(written(tmp_path / "f.png", CLASSES)), CLASSES)
    bgr = np.array([[[0, 0, 255], [255, 0, 0]]], np.uint8)  # red, blue: BT.601 luma 76 and 29
    np.testing.assert_array_equal(read_grey(written(tmp_path / "c.png", bgr)), [[76, 29]])
