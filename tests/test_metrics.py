"""air.metrics: box IoU, the matched box score and a family's scores against values worked out by hand."""
import dataclasses

import numpy as np
import pytest

import air
from air import metrics
from air.metrics import box_iou, matched_box_iou

SQUARE = [0.0, 0.0, 2.0, 2.0]  # x0, y0, x1, y1: a 2x2 box, area 4


@pytest.mark.parametrize("other, iou", [
    ([1.0, 1.0, 3.0, 3.0], 1 / 7),  # one unit square shared: 1 / (4 + 4 - 1)
    ([1.0, 0.0, 3.0, 2.0], 2 / 6),  # half of each: 2 / (4 + 4 - 2)
    (SQUARE, 1.0),  # the same box
    ([0.0, 0.0, 4.0, 4.0], 4 / 16),  # inside a 4x4 box: the small area over the large one
    ([0.5, 0.5, 1.5, 1.5], 1 / 4),  # a 1x1 box inside it
    ([2.0, 0.0, 4.0, 2.0], 0.0),  # touching along an edge
    ([5.0, 5.0, 7.0, 9.0], 0.0),  # far apart
    ([3.0, 0.0, 5.0, 2.0], 0.0),  # apart in x only: a negative width is no intersection, not a negative one
])
def test_box_iou_equals_hand_computed_values(other, iou):
    """The union counts the shared area once: area(a) + area(b) - intersection."""
    a, b = np.array(SQUARE), np.array(other)
    assert box_iou(a, b) == pytest.approx(iou, rel=1e-12, abs=1e-15)
    assert box_iou(b, a) == pytest.approx(iou, rel=1e-12, abs=1e-15)  # symmetric


def test_box_iou_broadcasts_over_leading_axes():
    """(m, 1, 4) against (1, n, 4) gives the (m, n) table metrics.matched_box_iou matches digits with."""
    truth = np.array([SQUARE, [0.0, 0.0, 4.0, 4.0]])
    steps = np.array([[1.0, 1.0, 3.0, 3.0], SQUARE, [3.0, 3.0, 4.0, 4.0]])
    table = box_iou(truth[:, None, :], steps[None, :, :])
    # Boxes inside the 4x4 one score their own area over 16; the 1x1 box in its corner misses the 2x2 one.
    np.testing.assert_allclose(table, [[1 / 7, 1.0, 0.0], [4 / 16, 4 / 16, 1 / 16]], rtol=1e-12)


def test_matched_box_iou_takes_the_best_matching_over_correctly_counted_scenes():
    """Steps are matched to digits one to one whatever their order; scenes counted wrong, or empty, are left out."""
    nan = [np.nan] * 4
    truth = np.array([[SQUARE, [4.0, 4.0, 6.0, 6.0]],  # two digits
                      [SQUARE, nan],  # one digit, counted as two: not scored
                      [nan, nan]])  # empty: nothing to match
    steps = np.array([[[4.0, 4.0, 6.0, 6.0], [1.0, 1.0, 3.0, 3.0]],  # the second digit first, then 1/7 of the first
                      [SQUARE, SQUARE],
                      [SQUARE, SQUARE]])
    score = matched_box_iou(steps, np.array([2, 2, 0]), truth, np.array([2, 1, 0]))
    assert score == pytest.approx((1.0 + 1 / 7) / 2, rel=1e-12)
    assert np.isnan(matched_box_iou(steps, np.array([1, 2, 1]), truth, np.array([2, 1, 0])))


def test_family_scores_read_merges_and_splits_off_the_two_digit_row(monkeypatch):
    """Two-digit scenes counted as one are merged, as three or more split; each a share of the two-digit row."""
    confusion = [[5, 0, 0, 0], [0, 8, 2, 0], [0, 3, 6, 1]]
    scores = {"confusion": confusion, "count_acc": 19 / 25, "per_class_acc": [1.0, 0.8, 0.6], "box_iou": 0.7}
    monkeypatch.setattr(metrics, "evaluate", lambda params, config, scenes: scores)
    row = metrics.family_scores(None, dataclasses.replace(air.preset("seed"), digit_size=(12, 16)), [None] * 25)
    assert row == {"digit_size": "12-16", "n_test": 25, "count_acc": 19 / 25,
                   "stderr": pytest.approx(np.sqrt(19 / 25 * 6 / 25 / 25), rel=1e-12), "acc_0": 1.0, "acc_1": 0.8,
                   "acc_2": 0.6, "merged_two": 0.3, "split_two": 0.1, "box_iou": 0.7}
    one_digit = {**scores, "confusion": [[5, 0], [1, 8]], "per_class_acc": [1.0, 8 / 9]}
    monkeypatch.setattr(metrics, "evaluate", lambda params, config, scenes: one_digit)
    row = metrics.family_scores(None, air.preset("seed"), [None] * 14)
    assert np.isnan(row["acc_2"]) and np.isnan(row["merged_two"]) and np.isnan(row["split_two"])
