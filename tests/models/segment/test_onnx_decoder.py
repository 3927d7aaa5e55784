"""The ONNX prompt decoder the page runs: exported from the service's own checkpoint, it computes
what mobile_sam's own ONNX wrapper computes and gives the masks PyTorch gives for the same taps,
on the float16 embedding file the page fetches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.runtime.weights import sha256_file
from models.segment.onnx_decoder import (
    EMBEDDING_SHAPE,
    INPUT_NAMES,
    OUTPUT_NAMES,
    PROJECTION_OUTPUTS,
    decoder_inputs,
    embedding_file,
    export_prompt_decoder,
    read_embedding_file,
    work_mask,
)
from models.segment.tap_decoder import ImageProjections, TapDecoder
from tests.models.conftest import open_photo

ort = pytest.importorskip("onnxruntime")

TAPS = [  # (points as fractions of the photo, labels): one tap, a refine, a removal
    ([(0.5, 0.5)], [1]),
    ([(0.3, 0.6)], [1]),
    ([(0.5, 0.5), (0.6, 0.4)], [1, 1]),
    ([(0.5, 0.5), (0.55, 0.5), (0.2, 0.2)], [1, 1, 0]),
]


@pytest.fixture(scope="module")
def exported(service, tmp_path_factory):
    """(decoder path, projections path, (their SHA-256s))."""
    folder = tmp_path_factory.mktemp("decoder")
    path, projections = folder / "decoder.onnx", folder / "projections.onnx"
    digests = export_prompt_decoder(service.segmenter.model, path, projections)
    return path, projections, digests


def torch_work_mask(segmenter, embedding, points, labels) -> np.ndarray:
    """PyTorch's mask for the taps at the encoder-input size, float32 decoder: the server's
    ``segment_points`` before its upscaling to the photo."""
    scaled = np.asarray(points, np.float32) * segmenter._scale(embedding)
    coords = torch.as_tensor(scaled)[None]
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.int)[None]
    autocast, segmenter.decoder_autocast = segmenter.decoder_autocast, None
    try:
        with torch.inference_mode():
            low_res, iou = segmenter._decode(embedding, points=(coords, labels_t),
                                             multimask=len(points) == 1)  # fmt: skip
            best = int(torch.argmax(iou[0]))
            logits = segmenter._work_logits(low_res[:, best : best + 1])[0, 0]
    finally:
        segmenter.decoder_autocast = autocast
    in_h, in_w = embedding.input_size
    return (logits[:in_h, :in_w] > segmenter.model.mask_threshold).numpy()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_export_writes_the_files_whose_checksums_it_returns(exported):
    path, projections, (digest, projections_digest) = exported
    assert path.stat().st_size > 1_000_000 and sha256_file(path) == digest
    assert projections.stat().st_size > 300_000
    assert sha256_file(projections) == projections_digest
    assert not list(path.parent.glob("*.part")), "no temporary file left behind"


def test_the_embedding_file_is_2_mib_of_float16_and_reads_back_within_its_rounding(service):
    photo = open_photo("dog.jpg").convert("RGB")
    features = service.segmenter.embed(photo).features
    data = embedding_file(features)
    assert len(data) == 2 * 256 * 64 * 64
    back = read_embedding_file(data)
    # float16 has an 11-bit significand: relative rounding error <= 2**-11.
    assert np.allclose(back, features.numpy(), rtol=2**-11, atol=1e-7)
    with pytest.raises(ValueError):
        embedding_file(features[:, :128])
    with pytest.raises(ValueError):
        read_embedding_file(data[:-2])


@pytest.mark.parametrize(("taps", "labels"), TAPS)
def test_the_decoder_computes_what_the_library_onnx_wrapper_computes(service, taps, labels):
    """ImageProjections + TapDecoder (the exported modules) against mobile_sam's SamOnnxModel
    on the same inputs: the same low-res logits and predicted IoU. Only the order of float32
    operations differs (projections made once per photo or moved across the attention
    products, transposed convolutions as matrix products): each logit is a few chained sums
    of <= 4096 terms of a float32 product, whose rounding stays far below 1e-4 of the largest
    logit (1e-6 measured)."""
    from mobile_sam.utils.onnx import SamOnnxModel

    segmenter = service.segmenter
    photo = open_photo("bears.jpg").convert("RGB")
    embedding = segmenter.embed(photo)
    points = np.array([(fx * photo.width, fy * photo.height) for fx, fy in taps])
    projected = ImageProjections(segmenter.model)(embedding.features)
    inputs = {k: torch.from_numpy(v) for k, v in decoder_inputs(
        embedding.features.numpy(), [p.numpy() for p in projected], embedding.photo_size,
        points, np.array(labels)).items()}
    with torch.no_grad():
        _, library_iou, library_logits = SamOnnxModel(segmenter.model, True)(
            inputs["image_embeddings"], inputs["point_coords"], inputs["point_labels"],
            torch.zeros(1, 1, 256, 256), torch.zeros(1), inputs["input_size"])
        logits, iou_pred = TapDecoder(segmenter.model)(*inputs.values())
    # Only the tokens under the photo are upscaled: bears.jpg is 718 x 1024 at the encoder.
    assert embedding.input_size == (718, 1024) and logits.shape == (1, 1, 4 * 46, 256)
    library_logits = library_logits[..., : logits.shape[-2], :]
    scale = float(library_logits.abs().max())
    torch.testing.assert_close(logits, library_logits, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(iou_pred, library_iou, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("taps", "labels"), TAPS)
def test_onnx_masks_equal_pytorch_masks_on_the_float16_embedding(service, exported, taps,
                                                                 labels):  # fmt: skip
    """The page's decoder (this ONNX file on the float16 file, its low-res logits upsampled
    as the page does) against PyTorch (float32 decoder on the float32 embedding): IoU >= 0.98,
    the parity rule for masks. The two differ by the float16 rounding of the embedding and
    the order of float additions."""
    segmenter = service.segmenter
    photo = open_photo("bears.jpg").convert("RGB")
    embedding = segmenter.embed(photo)
    points = [(fx * photo.width, fy * photo.height) for fx, fy in taps]
    expected = torch_work_mask(segmenter, embedding, points, labels)
    session = ort.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    projections = ort.InferenceSession(str(exported[1]), providers=["CPUExecutionProvider"])
    assert [o.name for o in projections.get_outputs()] == list(PROJECTION_OUTPUTS)
    features = read_embedding_file(embedding_file(embedding.features))
    projected = projections.run(None, {"image_embeddings": features})
    inputs = decoder_inputs(features, projected, embedding.photo_size, np.array(points),
                            np.array(labels))  # fmt: skip
    low_res, scores = session.run(None, inputs)
    assert low_res.shape[:2] == (1, 1) and scores.shape == (1, 1)
    got = work_mask(low_res, embedding.input_size)
    assert got.shape == expected.shape == embedding.input_size
    assert expected.any(), "random weights still give a mask for these taps"
    assert iou(got, expected) >= 0.98


# h or w = 15 mod 16 reads the last row the crop keeps (one token row fewer would change it).
@pytest.mark.parametrize("size", [(1, 1024), (3, 1024), (683, 1024), (767, 1024), (1024, 703),
                                  (1024, 768), (1024, 1024), (17, 1024), (1024, 30)])
def test_the_cropped_logits_give_the_mask_the_whole_logits_give(size):
    """The graph returns only the low-res logits under the photo (covering_tokens): the mask
    made from them equals the one from all 256x256, whatever the crop's neighbours hold."""
    from models.segment.tap_decoder import covering_tokens

    rows, cols = (4 * int(n) for n in covering_tokens(torch.tensor(size, dtype=torch.float32)))
    logits = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(sum(size)))
    expected = work_mask(logits.numpy(), size)
    assert np.array_equal(work_mask(logits[..., :rows, :cols].numpy(), size), expected)
    outside = logits.clone()  # anything beyond the crop is never read
    outside[..., rows:, :] = 100.0
    outside[..., :, cols:] = 100.0
    assert np.array_equal(work_mask(outside.numpy(), size), expected)


def test_decoder_inputs_refuse_mismatched_points():
    embeddings = np.zeros(EMBEDDING_SHAPE, np.float32)
    projected = [np.zeros((8, 4096, 16), np.float32)] * 3
    with pytest.raises(ValueError):
        decoder_inputs(embeddings, projected, (300, 400), np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError):
        decoder_inputs(embeddings, projected, (300, 400), np.zeros((2, 2)), np.ones(1))
    inputs = decoder_inputs(embeddings, projected, (300, 400), np.array([[200.0, 150.0]]),
                            np.ones(1))  # fmt: skip
    assert inputs["point_coords"].tolist() == [[[512.0, 384.0], [0.0, 0.0]]]
    assert inputs["point_labels"].tolist() == [[1.0, -1.0]]
    assert inputs["input_size"].tolist() == [768.0, 1024.0]
    assert tuple(inputs) == INPUT_NAMES
