"""The segmentation label set: the six DDD17 classes of Ev-SegNet (which EvDistill and ESS use),
their colours in pictures, and the label that marks a pixel to ignore."""

from __future__ import annotations

import numpy as np

IGNORE = 255  # in label arrays: no label here (no ground truth, an abstaining teacher)
MAX_CLASSES = IGNORE  # labels are uint8 and 255 is no label: classes 0 to 254
CLASS_COUNTS = f"from 2 to {MAX_CLASSES} (labels are uint8, {IGNORE} meaning no label)"  # what a network may have
CLASS_NAMES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")
FLAT, CONSTRUCTION_SKY, OBJECT, NATURE, HUMAN, VEHICLE = range(len(CLASS_NAMES))
# BGR, in CLASS_NAMES' order (Cityscapes' colours of road, building, traffic sign, vegetation,
# person, car); ignored pixels are black
CLASS_COLOURS = np.array(
    [[128, 64, 128], [70, 70, 70], [0, 220, 220], [35, 142, 107], [60, 20, 220], [142, 0, 0]], np.uint8
)
IGNORE_COLOUR = np.array([0, 0, 0], np.uint8)
