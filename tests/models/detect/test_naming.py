"""Naming masks from vocabulary detections: a name only with a confident, well-fitting,
unambiguous box; otherwise "something?"."""

from __future__ import annotations

import numpy as np

from models.detect.naming import MARGIN, MATCH_IOU, NAME_SCORE, box_iou_matrix, name_boxes
from models.result import UNSURE_LABEL

DOG_BOX = (100.0, 100.0, 300.0, 250.0)


def test_box_iou_matrix():
    ious = box_iou_matrix(np.array([DOG_BOX, (0, 0, 10, 10)]), np.array([DOG_BOX]))
    assert ious.shape == (2, 1)
    assert ious[0, 0] == 1.0 and ious[1, 0] == 0.0
    half = box_iou_matrix(np.array([(0, 0, 10, 10)]), np.array([(0, 0, 10, 5)]))
    assert np.isclose(half[0, 0], 0.5)
    assert box_iou_matrix(np.array([(0, 0, 0, 0)]), np.array([(0, 0, 0, 0)]))[0, 0] == 0.0


def test_a_confident_fitting_box_names_the_mask():
    (name,) = name_boxes([DOG_BOX], [("dog", 0.8, (102.0, 98.0, 298.0, 252.0))])
    assert name.label == "dog" and name.named and name.score == 0.8


def test_unsure_unless_score_iou_and_margin_all_agree():
    unsure = [
        [("dog", NAME_SCORE - 0.01, DOG_BOX)],  # not confident
        [("dog", 0.9, (100.0, 100.0, 200.0, 180.0))],  # a part of it, IoU ~0.27
        [("dog", 0.8, DOG_BOX), ("cat", 0.8 - MARGIN / 2, DOG_BOX)],  # two words fit
        [],
    ]
    for detections in unsure:
        (name,) = name_boxes([DOG_BOX], detections)
        assert name.label == UNSURE_LABEL and not name.named and name.score == 0.0
    assert MATCH_IOU >= 0.5 and NAME_SCORE >= 0.35


def test_the_best_of_several_fitting_boxes_wins():
    detections = [
        ("dog", 0.5, DOG_BOX),
        ("dog", 0.7, (101.0, 101.0, 299.0, 249.0)),  # the same word twice is no rivalry
        ("cat", 0.5, DOG_BOX),  # a weaker rival, more than MARGIN below
        ("ball", 0.95, (400.0, 400.0, 450.0, 450.0)),  # elsewhere
    ]
    names = name_boxes([DOG_BOX, (400.0, 400.0, 450.0, 450.0), (0.0, 0.0, 50.0, 50.0)], detections)
    assert [(n.label, n.named) for n in names] == [
        ("dog", True), ("ball", True), (UNSURE_LABEL, False)
    ]
    assert names[0].score == 0.7
