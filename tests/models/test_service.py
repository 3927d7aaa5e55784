"""InferenceService on the real photos with the random-weight checkpoints: the result always
fits the photo, whatever the weights find."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from models.detect.vocabulary import VOCABULARY
from models.errors import BadPromptError, WeightsMissingError, WeightsUnverifiedError
from models.prompts import parse_prompt, prompt_text
from models.result import UNSURE_LABEL
from models.segment.rle import rle_to_mask
from models.service import InferenceService
from tests.models.conftest import PHOTO_NAMES, open_photo

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"  # pycocotools on numpy 2
)

CASES = [(name, "everything", None) for name in PHOTO_NAMES] + [
    ("dog.jpg", "grounded", "dog, ball"),
    ("bears.jpg", "grounded", "teddy bear . bear"),
    ("car-and-bicycle.jpg", "grounded", "car, bicycle. person"),
    ("letters.jpg", "grounded", "letter"),
]


def assert_fits_photo(result, width: int, height: int) -> None:
    """Every mask is (H, W) bool, every box inside the photo, areas match the masks."""
    assert (result.width, result.height) == (width, height)
    for obj in result.objects:
        full = np.asarray(obj.mask)
        assert full.shape == (height, width) and full.dtype == bool
        assert obj.area == int(full.sum()) == obj.mask.area
        if obj.area:  # kept as the crop of its tight box
            rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
            assert obj.mask.crop.shape == (rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert 0.0 <= obj.score <= 1.0
        assert len(obj.color) == 3 and all(0 <= c <= 255 for c in obj.color)


def assert_json_round_trips(result) -> None:
    """to_json() is valid JSON whose RLEs decode to the masks."""
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["width"] == result.width and doc["height"] == result.height
    assert doc["mode"] == result.mode and doc["prompt"] == result.prompt
    assert doc["weights"] == result.weights
    assert len(doc["objects"]) == len(result.objects)
    for obj, entry in zip(result.objects, doc["objects"], strict=True):
        assert entry["label"] == obj.label and entry["area"] == obj.area
        assert entry["named"] is obj.named
        assert entry["color"].startswith("#") and len(entry["color"]) == 7
        assert entry["mask"]["size"] == [result.height, result.width]
        assert np.array_equal(rle_to_mask(entry["mask"]), obj.mask)
        assert len(entry["box"]) == 4


@pytest.mark.parametrize(("name", "mode", "prompt"), CASES)
def test_analyze_real_photo_fits_the_photo(service, name, mode, prompt):
    image = open_photo(name)
    stages = []
    result = service.analyze(
        image.convert("RGB"), mode, parse_prompt(prompt) if prompt else None, key=f"test-{name}",
        progress=lambda fraction, stage: stages.append((fraction, stage)),
    )  # fmt: skip
    assert_fits_photo(result, *image.size)
    assert_json_round_trips(result)
    assert result.mode == mode
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 and isinstance(s, str) and s for f, s in stages)
    assert result.timings["total"] > 0
    if mode == "everything":
        assert result.prompt is None
        assert result.weights == ALL_UNVERIFIED
        for obj in result.objects:  # a vocabulary word said with confidence, or "something?"
            assert obj.label in VOCABULARY if obj.named else obj.label == UNSURE_LABEL
        areas = [o.area for o in result.objects]
        assert areas == sorted(areas, reverse=True)
        assert result.objects, "with quality filters off, random weights still give masks"
    else:
        assert result.prompt == prompt_text(parse_prompt(prompt))  # as the library stores it
        assert result.weights == ALL_UNVERIFIED
        phrases = [p.strip() for p in prompt.replace(".", ",").split(",")]
        assert {o.label for o in result.objects} <= set(phrases)
        assert all(o.named for o in result.objects)
        scores = [o.score for o in result.objects]
        assert scores == sorted(scores, reverse=True)
        assert result.objects, "the small random Grounding DINO scores boxes above threshold"


def test_exif_orientation_is_applied(service, tmp_path):
    """A photo stored sideways with EXIF orientation 6 is analysed upright (W and H swap)."""
    image = open_photo("dog.jpg").convert("RGB").resize((640, 427))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=90)
    sideways = Image.open(io.BytesIO(buffer.getvalue()))
    result = service.analyze(sideways, "everything")
    assert (result.width, result.height) == (image.height, image.width)
    assert_fits_photo(result, image.height, image.width)


def test_non_rgb_images_are_accepted(service):
    gray = open_photo("letters.jpg").convert("L").resize((480, 480))
    result = service.analyze(gray, "everything")
    assert_fits_photo(result, 480, 480)


def test_grounded_mode_needs_a_prompt(service):
    image = Image.new("RGB", (64, 48))
    with pytest.raises(BadPromptError):
        service.analyze(image, "grounded", None)
    with pytest.raises(BadPromptError):
        service.analyze(image, "grounded", [])
    with pytest.raises(TypeError, match="parse_prompt"):  # text is parsed where it comes in
        service.analyze(image, "grounded", "dog")


def test_everything_mode_ignores_the_prompt(service):
    result = service.analyze(Image.new("RGB", (320, 240), (90, 140, 60)), "everything", ["cat"])
    assert result.prompt is None and result.mode == "everything"


def test_unknown_mode_is_a_value_error(service):
    with pytest.raises(ValueError, match="mode"):
        service.analyze(Image.new("RGB", (64, 48)), "panoptic")


class CountingSam(torch.nn.Module):
    """Stand-in for MobileSAM's image encoder that counts its runs (the cache is under test)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        assert pixels.shape[0] == 1 and max(pixels.shape[2:]) == 1024  # long side 1024
        return pixels

    def image_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        self.runs += 1
        return torch.zeros(1, 256, 64, 64)


def test_embeddings_are_cached_per_key_in_a_bounded_lru():
    from models.segment.segmenter import MobileSamSegmenter

    model = CountingSam()
    segmenter = MobileSamSegmenter(model, cache_size=2)
    photo = Image.new("RGB", (640, 480))
    first = segmenter.embed(photo, key="photo-1")
    assert first.input_size == (768, 1024) and first.photo_size == (480, 640)
    assert segmenter.embed(photo, key="photo-1") is first and model.runs == 1
    segmenter.embed(photo, key=None)
    assert model.runs == 2  # no key, no caching
    other_size = segmenter.embed(Image.new("RGB", (320, 480)), key="photo-1")
    assert other_size is not first and model.runs == 3  # same key, different photo
    segmenter.embed(photo, key="photo-2")
    segmenter.embed(photo, key="photo-3")
    assert model.runs == 5
    segmenter.embed(photo, key="photo-1")  # evicted (least recently used): computed again
    assert model.runs == 6
    segmenter.forget("photo-1")
    segmenter.embed(photo, key="photo-1")
    assert model.runs == 7


def test_box_and_point_prompts_give_photo_size_masks(service):
    image = open_photo("car-and-bicycle.jpg").convert("RGB")
    boxes = np.array([[100, 200, 900, 1100], [1200, 300, 2200, 1400]], dtype=np.float32)
    masks, scores = service.segmenter.segment_boxes(image, boxes, key="prompts")
    assert [np.asarray(m).shape for m in masks] == [(image.height, image.width)] * 2
    assert all(np.asarray(m).dtype == bool for m in masks)
    assert scores.shape == (2,)
    mask, score = service.segmenter.segment_points(
        image, np.array([[500.0, 600.0]]), np.array([1]), key="prompts"
    )
    assert mask.shape == (image.height, image.width) and isinstance(score, float)
    with pytest.raises(ValueError):
        service.segmenter.segment_points(image, np.zeros((2, 2)), np.array([1]))


ALL_UNVERIFIED = {"mobile_sam": "unverified", "grounding_dino": "unverified",
                  "omdet_turbo": "unverified"}


def test_load_refuses_random_weights_unless_allowed(service_config):
    strict = InferenceService(replace(service_config, allow_unverified_weights=False))
    with pytest.raises(WeightsUnverifiedError, match="MobileSAM"):
        strict.load()
    with pytest.raises(WeightsUnverifiedError):
        strict.analyze(Image.new("RGB", (64, 48)), "everything")
    assert strict.segmenter is None


def test_unverified_omdet_turbo_weights_are_never_served_unless_allowed(service_config, caplog):
    strict = InferenceService(replace(service_config, allow_unverified_weights=False))
    with caplog.at_level("WARNING"):
        assert strict._namer() is None  # neither detector's random weights are used
    assert strict.omdet is None and "omdet_turbo" not in strict.weights
    assert "not verified" in caplog.text and "ALLOW_UNVERIFIED_WEIGHTS=1" in caplog.text


def test_missing_weights_are_reported_at_analysis(service_config, tmp_path):
    empty = InferenceService(
        replace(service_config, model_dir=tmp_path / "none", mobile_sam_checkpoint=None)
    )
    with pytest.raises(WeightsMissingError) as info:
        empty.analyze(Image.new("RGB", (64, 48)), "everything")
    assert "flask models download" in str(info.value)
    assert str(tmp_path / "none" / "mobile_sam.pt") in str(info.value)


def test_service_loads_nothing_until_asked(service_config):
    fresh = InferenceService(service_config)
    assert fresh.segmenter is None and fresh.detector is None and fresh.weights == {}
    fresh.load(("everything",))  # MobileSAM, and OmDet-Turbo for the names
    assert fresh.segmenter is not None and fresh.omdet is not None and fresh.detector is None
    segmenter, omdet = fresh.segmenter, fresh.omdet
    fresh.load()
    assert fresh.segmenter is segmenter and fresh.omdet is omdet  # idempotent
    assert fresh.detector is not None


def test_corrupt_mobile_sam_checkpoint_is_a_model_error(tmp_path):
    from models.errors import ModelError
    from models.segment.segmenter import MobileSamSegmenter

    path = tmp_path / "mobile_sam.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="could not be loaded"):
        MobileSamSegmenter.from_checkpoint(path)


def test_everything_mode_caps_the_number_of_masks(service):
    settings = service.segmenter.everything_settings
    try:
        service.segmenter.everything_settings = replace(settings, box_nms_thresh=1.0, max_masks=3)
        photo = open_photo("bears.jpg").convert("RGB").resize((517, 362))
        masks = service.segmenter.everything(photo, key="cap")
        assert 0 < len(masks) <= 3
        assert [m.area for m in masks] == sorted((m.area for m in masks), reverse=True)
    finally:
        service.segmenter.everything_settings = settings


def test_one_analysis_computes_the_embedding_once(service):
    segmenter = service.segmenter
    runs = []
    # The neck: its last stage, run once per encoding (the first stages run per strip).
    neck = segmenter.model.image_encoder.neck
    hook = neck.register_forward_hook(lambda *_: runs.append(1))
    try:
        before = dict(segmenter._cache)
        photo = open_photo("dog.jpg").convert("RGB").resize((400, 267))
        service.analyze(photo, "grounded", ["dog"])  # no key: shared by the stages, then dropped
        assert len(runs) == 1 and dict(segmenter._cache) == before
        service.analyze(photo, "everything", key="same-photo")
        service.analyze(photo, "grounded", ["dog"], key="same-photo")  # cached by the first
        assert len(runs) == 2
    finally:
        hook.remove()


def test_everything_mode_matches_sams_mask_generator(service):
    """Scoring at low resolution keeps SAM's masks: on the same weights and settings, every
    mask of ``SamAutomaticMaskGenerator`` (>= 1% of the photo) has one of ours with IoU >= 0.8
    (filters off and NMS off on both, so random weights give many masks)."""
    from models.segment.segmenter import import_mobile_sam, upscale_mask

    segmenter = service.segmenter
    settings = segmenter.everything_settings
    photo = open_photo("bears.jpg").convert("RGB").resize((400, 280))
    try:
        segmenter.everything_settings = replace(
            settings, box_nms_thresh=1.0, max_masks=1000, min_area_fraction=0.01,
            fill_rounds=(), pred_iou_thresh=0.0, stability_score_thresh=0.0,
        )  # fmt: skip
        ours = segmenter.everything(photo)
    finally:
        segmenter.everything_settings = settings
    embedding = segmenter.embed(photo)
    height, width = embedding.input_size
    work = np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))
    generator = import_mobile_sam().SamAutomaticMaskGenerator(
        segmenter.model, points_per_side=settings.points_per_side, pred_iou_thresh=0.0,
        stability_score_thresh=0.0, box_nms_thresh=1.0,
    )  # fmt: skip
    with torch.inference_mode():
        reference = [r for r in generator.generate(work) if r["area"] >= 0.01 * height * width]
    assert reference and ours
    for record in reference:
        mask = upscale_mask(record["segmentation"], (photo.height, photo.width))
        mask = np.asarray(mask)
        best = max(np.logical_and(mask, np.asarray(o.mask)).sum()
                   / np.logical_or(mask, np.asarray(o.mask)).sum() for o in ours)  # fmt: skip
        assert best >= 0.8, f"a reference mask of area {record['area']} has best IoU {best:.2f}"


def test_upright_photo_is_not_copied():
    """An upright RGB photo is analysed as it is (a 12-MP copy is 36 MB); a turned one
    (EXIF orientation 6) or a non-RGB one becomes a new upright RGB image."""
    from models.service import upright

    photo = Image.new("RGB", (40, 30), (10, 20, 30))
    assert upright(photo) is photo
    gray = upright(Image.new("L", (40, 30)))
    assert gray.mode == "RGB" and gray.size == (40, 30)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(buffer, "JPEG", exif=exif)
    turned = Image.open(io.BytesIO(buffer.getvalue()))
    turned_upright = upright(turned)
    assert turned_upright is not turned and turned_upright.size == (30, 40)
    assert turned_upright.mode == "RGB"
