"""MobileSAM segmenter internals that must match upstream SAM on the same weights."""

from __future__ import annotations

import numpy as np
import torch

from tests.models.conftest import open_photo


def test_shared_embedding_decoder_matches_sams_mask_decoder(service, monkeypatch):
    """Decoding B prompts without copying the image embedding per prompt gives SAM's masks
    (mask IoU >= 0.98, the parity rule for a faster runtime) and IoU predictions (in float32;
    bfloat16 is checked in test_segmenter_precision.py)."""
    segmenter = service.segmenter
    monkeypatch.setattr(segmenter, "decoder_autocast", None)
    model = segmenter.model
    embedding = segmenter.embed(open_photo("dog.jpg").convert("RGB"))
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(12, 1, 2, generator=generator) * 1000
    labels = torch.ones(12, 1, dtype=torch.int)
    boxes = torch.tensor([[100.0, 80.0, 500.0, 600.0], [400.0, 50.0, 1000.0, 680.0]])
    with torch.inference_mode():
        for prompts, multimask in [({"points": (points, labels)}, True), ({"boxes": boxes}, False)]:
            ours, our_iou = segmenter._decode(embedding, multimask=multimask, **prompts)
            sparse, dense = model.prompt_encoder(masks=None, **{
                "points": None, "boxes": None, **prompts})  # fmt: skip
            theirs, their_iou = model.mask_decoder(
                image_embeddings=embedding.features,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            assert ours.shape == theirs.shape and our_iou.shape == their_iou.shape
            assert torch.allclose(our_iou, their_iou, atol=1e-4)
            a, b = (ours > 0).flatten(2).numpy(), (theirs > 0).flatten(2).numpy()
            union = np.logical_or(a, b).sum(-1)
            iou = np.where(union > 0, np.logical_and(a, b).sum(-1) / np.maximum(union, 1), 1.0)
            assert iou.min() >= 0.98
            assert torch.allclose(ours, theirs, atol=1e-3)


def test_fill_points_go_only_where_no_mask_was_found_nor_asked(service):
    segmenter = service.segmenter
    logits = torch.full((1, 40, 60), -5.0)
    logits[0, :20, :] = 5.0  # a kept mask over the top half
    nothing = torch.zeros((40, 60), dtype=torch.bool)
    points = segmenter._uncovered_points(logits, nothing, 4, 5, (40, 60))
    assert 0 < len(points) <= 5 and (points[:, 1] > 0.5).all(), "only the empty bottom half"
    empty = segmenter._uncovered_points(torch.zeros((0, 40, 60)), nothing, 4, 5, (40, 60))
    assert len(empty) == 5  # nothing found: spread over the whole fine grid
    assert len(segmenter._uncovered_points(logits, nothing, 0, 5, (40, 60))) == 0
    answered = nothing.clone()
    answered[20:, :30] = True  # a prompt there answered "the floor" (not kept)
    rest = segmenter._uncovered_points(logits, answered, 8, 64, (40, 60))
    assert len(rest) and (rest[:, 0] > 0.5).all() and (rest[:, 1] > 0.5).all()


def test_everything_asks_the_boxes_first_then_the_grid_where_they_found_nothing(service,
                                                                                monkeypatch):
    """With a detector's boxes, the boxes are the first prompts (one candidate each) and the
    coarse grid keeps only its points outside their answers."""
    segmenter = service.segmenter
    photo = open_photo("dog.jpg").convert("RGB").resize((512, 341))
    embedding = segmenter.embed(photo)
    decode, rounds = segmenter._decode, []

    def answer_left_part(embedding, *, points=None, boxes=None, multimask=False):
        low_res, iou = decode(embedding, points=points, boxes=boxes, multimask=multimask)
        if boxes is not None:  # each box answers "the left 40% of the photo", surely
            assert low_res.shape[1] == 1, "one candidate per box"
            low_res = torch.full_like(low_res, -10.0)
            low_res[:, :, :, :110] = 10.0
            iou = torch.full_like(iou, 0.99)
        return low_res, iou

    grid_masks = segmenter._grid_masks

    def count_rounds(embedding, points, low_size, *, box_prompts=False):
        rounds.append(("boxes" if box_prompts else "points", len(points)))
        return grid_masks(embedding, points, low_size, box_prompts=box_prompts)

    monkeypatch.setattr(segmenter, "_decode", answer_left_part)
    monkeypatch.setattr(segmenter, "_grid_masks", count_rounds)
    boxes = np.array([[0.0, 0.0, 80.0, 341.0], [10.0, 20.0, 70.0, 300.0]], dtype=np.float32)
    masks = segmenter.everything(photo, embedding=embedding, boxes=boxes)
    side = segmenter.everything_settings.points_per_side
    assert rounds[0] == ("boxes", 2), "the boxes come first"
    assert rounds[1][0] == "points" and 0 < rounds[1][1] < side * side, (
        "the coarse grid's points inside the boxes' answer are not asked")
    assert any(m.box[0] == 0 for m in masks)  # the boxes' mask is kept
    rounds.clear()
    segmenter.everything(photo, embedding=embedding)
    assert rounds[0] == ("points", side * side), "without boxes: the whole coarse grid"


def test_stability_is_scored_at_work_resolution():
    """On the 256-px grid a boundary pixel within the +-1 offset counts as a whole low-res
    pixel; SAM scores masks upsampled to the image, where the same logits score higher."""
    from models.segment.segmenter import work_stability

    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    disc = (6.3 - torch.hypot(yy - 20.2, xx - 19.7)) * 16  # a small object, sharp logits
    low = float(_amg_stability(disc[None]))
    work = float(work_stability(disc[None], 0.0))
    assert low < 0.95 <= work <= 1.0


def _amg_stability(logits):
    from models.segment.segmenter import STABILITY_OFFSET, import_mobile_sam

    return import_mobile_sam().utils.amg.calculate_stability_score(logits, 0.0, STABILITY_OFFSET)


def test_decoding_in_chunks_matches_one_pass(service, monkeypatch):
    """The decoder's transformer and upscaling run DECODE_CHUNK prompts at a time (memory);
    the logits and IoUs are those of one pass over the whole batch, also for a batch that is
    not a multiple of the chunk.

    Within float32 rounding, not bit for bit: oneDNN chooses its matrix-product kernels (and
    so the order of each sum) by the batch shape and the CPU; on AMX CPUs a chunk and the
    whole batch differ. A float32 sum of n terms in another order moves by at most about
    n * 2**-24 of the terms' summed magnitudes; the decoder's longest sums (attention over
    4,096 image tokens) give 4096 * 6e-8 = 2.4e-4 of it, so logits and IoU predictions are
    compared with rtol = atol = 1e-3. A prompt decoded with another prompt's embedding, or
    chunks put back in the wrong order, differ by far more. On AVX2, AVX512 and AVX512-BF16
    kernels (``ONEDNN_MAX_CPU_ISA``) the two are identical."""
    import models.segment.segmenter as segmenter_module

    segmenter = service.segmenter
    embedding = segmenter.embed(open_photo("dog.jpg").convert("RGB"))
    generator = torch.Generator().manual_seed(1)
    count = 2 * segmenter_module.DECODE_CHUNK + 1
    points = torch.rand(count, 1, 2, generator=generator) * 1000
    labels = torch.ones(count, 1, dtype=torch.int)
    boxes = torch.rand(count, 4, generator=generator) * 500
    boxes[:, 2:] += boxes[:, :2]
    with torch.inference_mode():
        for prompts, multimask in [({"points": (points, labels)}, True), ({"boxes": boxes}, False)]:
            chunked = segmenter._decode(embedding, multimask=multimask, **prompts)
            monkeypatch.setattr(segmenter_module, "DECODE_CHUNK", 10**6)
            whole = segmenter._decode(embedding, multimask=multimask, **prompts)
            monkeypatch.undo()
            assert chunked[0].shape == whole[0].shape and chunked[1].shape == whole[1].shape
            torch.testing.assert_close(chunked[0], whole[0], rtol=1e-3, atol=1e-3)
            torch.testing.assert_close(chunked[1], whole[1], rtol=1e-3, atol=1e-3)


def test_upscaled_masks_are_the_tight_crop_of_the_whole_resize():
    """``upscale_mask`` keeps only the tight box of the bilinear resize, and its pixels are
    those of thresholding the whole resize (small and large objects, up- and downscaling,
    objects touching the border, an empty mask)."""
    import cv2
    import pytest

    from models.segment.segmenter import upscale_mask

    rng = np.random.default_rng(0)
    cases = []
    for size in [(75, 100), (3000, 4000), (20, 27)]:
        for top, left, h, w in [(5, 7, 1, 1), (0, 0, 30, 40), (10, 3, 12, 20), (29, 39, 1, 1)]:
            small = np.zeros((30, 40), dtype=bool)
            small[top : top + h, left : left + w] = rng.random((h, w)) > 0.3
            small[top, left] = True
            cases.append((small, size))
    cases.append((np.zeros((30, 40), dtype=bool), (75, 100)))
    for small, (height, width) in cases:
        whole = cv2.resize(small.astype(np.uint8) * 255, (width, height),
                           interpolation=cv2.INTER_LINEAR) >= 128  # fmt: skip
        mask = upscale_mask(small, (height, width))
        assert mask.shape == (height, width)
        assert np.array_equal(np.asarray(mask), whole)
        assert mask.area == int(whole.sum())
        if whole.any():
            rows, cols = np.flatnonzero(whole.any(axis=1)), np.flatnonzero(whole.any(axis=0))
            assert mask.box == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
            assert mask.crop.shape == (rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
        else:
            assert mask.slices is None and mask.box == (0.0, 0.0, 0.0, 0.0)
    same = rng.random((30, 40)) > 0.5
    assert np.array_equal(np.asarray(upscale_mask(same, (30, 40))), same)
    with pytest.raises(ValueError):
        upscale_mask(np.zeros((2, 3, 4), dtype=bool), (10, 10))
