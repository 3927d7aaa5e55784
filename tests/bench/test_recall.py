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
