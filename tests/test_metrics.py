import numpy as np
import pytest

from evtools.metrics import confusion_matrix, iou_per_class, miou, pixel_accuracy


def test_confusion_ignores_255_and_counts_by_truth_then_prediction():
    truth = np.array([[0, 0, 1], [1, 255, 2]])
    prediction = np.array([[0, 1, 1], [2, 0, 2]])
    confusion = confusion_matrix(prediction, truth, 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert pixel_accuracy(confusion) == 3 / 5


def test_the_three_conventions_differ_on_an_absent_class():
    # class 2 appears in neither truth nor prediction; class 0: IoU 1/2, class 1: IoU 1/2
    truth = np.array([0, 0, 1, 1])
    prediction = np.array([0, 1, 1, 0])
    confusion = confusion_matrix(prediction, truth, 3)
    np.testing.assert_allclose(iou_per_class(confusion, "nanmean"), [1 / 3, 1 / 3, np.nan])
    np.testing.assert_allclose(iou_per_class(confusion, "zero"), [1 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(iou_per_class(confusion, "clamped"), [1 / 3, 1 / 3, 0.0])
    assert miou(confusion, "nanmean") == pytest.approx(1 / 3)
    assert miou(confusion, "zero") == pytest.approx(2 / 9)
    assert miou(confusion, "clamped") == pytest.approx(2 / 9)


def test_clamped_and_zero_agree_but_nanmean_differs_on_a_class_predicted_but_absent():
    truth = np.array([0, 0, 0, 0])
    prediction = np.array([0, 0, 0, 2])  # class 2 only predicted: IoU 0 everywhere; class 1 absent
    confusion = confusion_matrix(prediction, truth, 3)
    np.testing.assert_allclose(iou_per_class(confusion, "nanmean"), [3 / 4, np.nan, 0.0])
    assert miou(confusion, "nanmean") == pytest.approx(3 / 8)
    assert miou(confusion, "zero") == miou(confusion, "clamped") == pytest.approx(1 / 4)


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="convention must be one of"):
        iou_per_class(np.eye(2), "mean")
