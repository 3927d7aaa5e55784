"""Everything mode's prompting strategy against SamAutomaticMaskGenerator's on the recall
oracle (bench/recall.py): synthetic scenes, a stand-in decoder, no weights."""

from __future__ import annotations

import numpy as np
import pytest

from bench import recall


@pytest.fixture(scope="module")
def results():
    scenes = [recall.make_scene(seed) for seed in (0, 5, 9)]
    return {"ours": recall.score(scenes, [recall.ours(s) for s in scenes]),
            "reference": recall.score(scenes, [recall.reference(s) for s in scenes])}


def test_scenes_hold_what_the_oracle_promises():
    scene = recall.make_scene(3)
    areas = scene.areas()
    assert 25 <= len(scene.masks) <= 64
    assert (areas >= 0.002).all() and (areas >= 0.05).any() and (areas < 0.01).sum() >= 10
    assert any(p is not None for p in scene.parent)  # some objects lie on others
    assert any(scene.parts)
    stacked = np.sum(scene.masks, axis=0)
    assert stacked.max() == 1  # visible masks do not overlap
    assert recall.make_scene(3).label.tolist() == scene.label.tolist()  # seeded


def test_the_stand_in_answers_as_sam_would():
    scene = recall.make_scene(1)
    responder = recall.Responder(scene)
    obj = int(np.argmax(scene.areas()))
    ys, xs = np.nonzero(scene.masks[obj] & ~responder.near_edge)
    answers = responder.point(float(xs[len(xs) // 2]), float(ys[len(ys) // 2]))
    assert ("obj", obj) in [key for key, _ in answers]
    assert all(0.7 < iou < 1.0 for _, iou in answers)
    ys, xs = np.nonzero(responder.background)
    assert responder.point(float(xs[0]), float(ys[0]))[0] == (("bg",), 0.60)
    low = responder.low_logits(("obj", obj))
    assert low.shape == responder.low_size and low.max() > 0 > low.min()


def test_ours_finds_what_the_reference_finds_with_a_tenth_of_the_prompts(results):
    ours, ref = results["ours"], results["reference"]
    assert ours.recall[0.01] >= 0.95 * ref.recall[0.01]
    assert ours.recall[0.0025] >= 0.90 * ref.recall[0.0025]
    assert ours.precision >= ref.precision - 0.02  # at (at least) equal precision
    assert ours.prompts <= 0.15 * ref.prompts


def test_the_report_prints_both_rows(results):
    text = recall.report(results)
    assert "ours" in text and "reference" in text and "ours / reference" in text


def test_the_stand_in_detector_misses_small_objects_more_and_is_seeded():
    scenes = [recall.make_scene(seed) for seed in range(3)]
    detector = recall.StandInDetector("test", recall_large=0.9, recall_small=0.5, jitter=0.0,
                                      false_positives=0.0)  # fmt: skip
    found = {True: [0, 0], False: [0, 0]}  # large?: [found, total]
    for seed, scene in enumerate(scenes):
        boxes = recall.detector_boxes(scene, detector, seed)
        assert np.array_equal(boxes, recall.detector_boxes(scene, detector, seed))
        responder = recall.Responder(scene)
        exact = {tuple(b) for b in responder.boxes.astype(np.float32).tolist()}
        got = {tuple(b) for b in boxes.tolist()}
        for box, area in zip(responder.boxes.astype(np.float32).tolist(), scene.areas(),
                             strict=True):  # fmt: skip
            found[bool(area >= 0.01)][0] += tuple(box) in got
            found[bool(area >= 0.01)][1] += 1
        assert got <= exact  # without jitter and false positives: true boxes only
    assert found[True][0] / found[True][1] > found[False][0] / found[False][1]


@pytest.fixture(scope="module")
def with_boxes():
    return recall.compare_boxes(range(3))


def test_detector_boxes_first_keep_the_recall_with_fewer_prompts(with_boxes):
    """MobileSAMv2-style object-aware prompts: with a detector's boxes asked first, the coarse
    grid goes only where no box answered; even a poor detector's boxes lose no object."""
    plain = with_boxes["ours"]
    for name in ("ours + good boxes", "ours + poor boxes"):
        boxed = with_boxes[name]
        assert boxed.recall[0.01] >= plain.recall[0.01] - 1e-9, name
        assert boxed.recall[0.0025] >= plain.recall[0.0025] - 0.01, name
        assert boxed.prompts < plain.prompts, name
    assert with_boxes["ours + good boxes"].prompts <= 0.8 * plain.prompts
    text = recall.report(with_boxes)
    assert "ours + good boxes" in text and "reference" not in text
