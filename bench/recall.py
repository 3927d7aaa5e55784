"""A recall oracle for everything mode that needs no weights.

Random weights keep no mask, so everything mode's prompting strategy (which points and boxes
it asks the decoder about, which candidates it keeps) cannot be judged on them. This module
builds synthetic scenes with known objects and a stand-in for MobileSAM's prompt encoder and
mask decoder that answers each prompt as a trained SAM would: with the true object under the
prompt (or its part, or the object merged with what it lies on) and a predicted IoU and logits
whose stability score behave like SAM's. Our everything mode (``MobileSamSegmenter.everything``)
and the reference (``SamAutomaticMaskGenerator`` with its defaults, 32x32 points) run through
the same stand-in, and :func:`compare` reports the recall of the objects of at least 1% and
at least 0.25% of the image (mask IoU >= 0.8), the precision of the masks kept, and the
number of decoder prompts each used.

The stand-in, for a point on object ``o`` (the top-most object under it):

- three candidates, SAM's multimask output: the part of ``o`` under the point (``o`` itself
  when it has no parts), ``o``, and ``o`` merged with the object it lies on (``o`` when it
  lies on the background); predicted IoUs 0.90 / 0.95 / 0.80, 0.10 lower for points within
  2 px of an edge (ambiguous), plus a fixed jitter of +-0.02 per (object, candidate);
- a point on the background: the background, predicted IoU 0.60 (SAM's filters drop it);
- a box prompt: the visible object whose box has the highest IoU with it (0.95), else the
  background (0.50);
- logits: 2 per pixel of signed distance to the candidate's edge (photo pixels), clipped to
  +-20, so a mask thresholded at +-1 loses or gains a half-pixel band: SAM's stability score
  then falls with the object's perimeter-to-area ratio, as a trained SAM's does.

Everything mode can also take a detector's boxes as its first prompts (MobileSAMv2's
object-aware prompts). :class:`StandInDetector` gives a scene's boxes as an imperfect
detector would (:func:`detector_boxes`): it misses some objects, more of the small ones,
moves each edge of the boxes it finds, and adds boxes on nothing; :func:`compare_boxes`
scores everything mode with such boxes against the same scenes without them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch

SLOPE = 16.0  # logit units per low-res pixel of signed distance (the decoder's 256 grid)
CLIP = 20.0
RECALL_IOU = 0.8
SIZE_CLASSES = (0.01, 0.0025)  # objects of at least 1% and at least 0.25% of the image


@dataclass
class Scene:
    """A synthetic photo with known objects.

    Attributes:
        image: (H, W, 3) uint8 RGB (flat colours; the stand-in does not look at it).
        masks: visible (H, W) bool mask of each object (occluders removed).
        parts: per object, its parts' visible masks (empty for objects without parts).
        parent: per object, the index of the object it lies on, or None.
        label: (H, W) int32, the top-most object at each pixel, -1 for the background.
    """

    image: np.ndarray
    masks: list[np.ndarray]
    parts: list[list[np.ndarray]]
    parent: list[int | None]
    label: np.ndarray = field(repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return self.label.shape

    def areas(self) -> np.ndarray:
        """(N,) float64 visible area of each object as a fraction of the image."""
        total = self.label.size
        return np.array([m.sum() / total for m in self.masks])


def _shape(rng: np.random.Generator, size: tuple[int, int], area: float,
           within: tuple[int, int, int, int] | None) -> np.ndarray:
    """A random ellipse or rectangle of about ``area`` pixels, inside ``within`` (x0, y0, x1,
    y1) if given."""
    h, w = size
    aspect = rng.uniform(0.5, 2.0)
    half_w = max(3.0, np.sqrt(area * aspect) / 2)
    half_h = max(3.0, area / (4 * half_w))
    x0, y0, x1, y1 = within or (0, 0, w, h)
    cx = rng.uniform(x0 + half_w * 0.6, max(x0 + half_w * 0.6 + 1, x1 - half_w * 0.6))
    cy = rng.uniform(y0 + half_h * 0.6, max(y0 + half_h * 0.6 + 1, y1 - half_h * 0.6))
    mask = np.zeros(size, dtype=np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(mask, (int(cx), int(cy)), (int(half_w), int(half_h)),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        cv2.rectangle(mask, (int(cx - half_w), int(cy - half_h)),
                      (int(cx + half_w), int(cy + half_h)), 1, -1)
    return mask.astype(bool)


def make_scene(seed: int, size: tuple[int, int] = (384, 512)) -> Scene:
    """A scene of 2-4 large objects (10-25% of the image: a table, a person), then 30-60
    objects of 0.5-10% of it (most of them small), about a third of them lying on a large
    one, overlapping each other by at most a quarter; later objects occlude earlier ones.
    Objects left with less than 0.2% of the image, or less than a quarter of their shape,
    are dropped. Objects of at least 3% have two parts (their halves).

    Args:
        seed: the scene's random seed (same seed, same scene).
        size: (H, W) in pixels.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    total = h * w
    shapes: list[np.ndarray] = []
    parents: list[int | None] = []
    for _ in range(rng.integers(2, 5)):
        shapes.append(_shape(rng, size, rng.uniform(0.10, 0.25) * total, None))
        parents.append(None)
    large = len(shapes)
    small = np.zeros(size, dtype=bool)  # the small objects placed so far
    for _ in range(rng.integers(30, 61)):
        # skewed towards small things (most objects in a child's photo are small)
        area = 0.005 * (0.10 / 0.005) ** (rng.random() ** 2) * total
        parent = int(rng.integers(0, large)) if rng.random() < 0.35 else None
        within = None
        if parent is not None:
            ys, xs = np.nonzero(shapes[parent])
            within = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        for _ in range(20):  # small objects overlap each other by at most a quarter
            shape = _shape(rng, size, area, within)
            if (shape & small).sum() <= 0.25 * shape.sum():
                break
        else:
            continue
        small |= shape
        shapes.append(shape)
        parents.append(parent)
    label = np.full(size, -1, dtype=np.int32)
    for i, shape in enumerate(shapes):
        label[shape] = i
    keep = [i for i, shape in enumerate(shapes)
            if (label == i).sum() >= max(0.002 * total, 0.25 * shape.sum())]
    index = {old: new for new, old in enumerate(keep)}
    relabel = np.full(len(shapes) + 1, -1, dtype=np.int32)
    for old, new in index.items():
        relabel[old] = new
    label = relabel[label]
    masks = [label == index[i] for i in keep]
    parts = []
    for mask in masks:
        if mask.sum() < 0.03 * total:
            parts.append([])
            continue
        ys, xs = np.nonzero(mask)
        if np.ptp(xs) >= np.ptp(ys):
            cut = np.median(xs)
            halves = [mask & (np.arange(w)[None, :] < cut), mask & (np.arange(w)[None, :] >= cut)]
        else:
            cut = np.median(ys)
            halves = [mask & (np.arange(h)[:, None] < cut), mask & (np.arange(h)[:, None] >= cut)]
        parts.append(halves)
    parent = [index.get(parents[i]) if parents[i] is not None else None for i in keep]
    image = np.full((h, w, 3), 200, dtype=np.uint8)
    palette = rng.integers(0, 255, size=(len(masks), 3), dtype=np.uint8)
    for i, mask in enumerate(masks):
        image[mask] = palette[i]
    return Scene(image=image, masks=masks, parts=parts, parent=parent, label=label)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


class Responder:
    """The stand-in decoder's answers for one scene, in photo pixels (see the module text)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        h, w = scene.size
        self.background = scene.label < 0
        edge = np.zeros((h, w), dtype=bool)
        edge[:-1] |= scene.label[:-1] != scene.label[1:]
        edge[1:] |= scene.label[1:] != scene.label[:-1]
        edge[:, :-1] |= scene.label[:, :-1] != scene.label[:, 1:]
        edge[:, 1:] |= scene.label[:, 1:] != scene.label[:, :-1]
        self.near_edge = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3) < 2
        boxes = []
        for mask in scene.masks:
            ys, xs = np.nonzero(mask)
            boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        self.boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        self.prompts = 0
        # SAM's frames: the encoder input (long side 1024) and the decoder's low-res grid.
        scale = 1024 / max(h, w)
        self.in_size = (int(h * scale + 0.5), int(w * scale + 0.5))
        self.low_size = (-(-self.in_size[0] * 256 // 1024), -(-self.in_size[1] * 256 // 1024))

    @cache  # noqa: B019 - one responder per scene, alive for one comparison
    def candidate(self, key: tuple) -> np.ndarray:
        """The (H, W) bool mask of a candidate key: ("bg",), ("obj", i), ("part", i, k) or
        ("merge", i)."""
        kind = key[0]
        if kind == "bg":
            return self.background
        if kind == "obj":
            return self.scene.masks[key[1]]
        if kind == "part":
            return self.scene.parts[key[1]][key[2]]
        parent = self.scene.parent[key[1]]
        return self.scene.masks[key[1]] | self.scene.masks[parent]

    @cache  # noqa: B019
    def low_logits(self, key: tuple) -> np.ndarray:
        """(h, w) float32 low-resolution logits of a candidate, on the photo's part of the
        decoder's 256x256 grid: ``SLOPE`` per low-res pixel of signed distance to its edge."""
        mask = self.candidate(key).astype(np.uint8)
        inside = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        outside = cv2.distanceTransform(np.pad(1 - mask, 1, constant_values=1), cv2.DIST_L2,
                                        5)[1:-1, 1:-1]
        signed = np.where(mask > 0, inside - 0.5, 0.5 - outside)  # photo px, edge at 0
        low_h, low_w = self.low_size
        per_low = self.scene.size[0] / (self.in_size[0] / 4)  # photo px per low-res px
        small = cv2.resize(signed, (low_w, low_h), interpolation=cv2.INTER_AREA) / per_low
        return np.clip(SLOPE * small, -CLIP, CLIP).astype(np.float32)

    @cache  # noqa: B019
    def logits(self, key: tuple) -> np.ndarray:
        """(H, W) float32 logits at photo size, made from :meth:`low_logits` as SAM's
        ``postprocess_masks`` makes them: bilinear to 1024x1024, crop to the input, bilinear
        to the photo."""
        import torch.nn.functional as F

        low_h, low_w = self.low_size
        grid = torch.full((1, 1, 256, 256), -CLIP)
        grid[0, 0, :low_h, :low_w] = torch.from_numpy(self.low_logits(key))
        work = F.interpolate(grid, (1024, 1024), mode="bilinear", align_corners=False)
        in_h, in_w = self.in_size
        photo = F.interpolate(work[..., :in_h, :in_w], self.scene.size, mode="bilinear",
                              align_corners=False)
        return photo[0, 0].numpy()

    @staticmethod
    def _jitter(key: tuple) -> float:
        return (zlib.crc32(repr(key).encode()) % 1000) / 1000 * 0.04 - 0.02

    def point(self, x: float, y: float) -> list[tuple[tuple, float]]:
        """The three (candidate key, predicted IoU) answers to a point prompt at (x, y)."""
        self.prompts += 1
        h, w = self.scene.size
        col, row = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
        obj = int(self.scene.label[row, col])
        if obj < 0:
            return [(("bg",), 0.60)] * 3
        parts = self.scene.parts[obj]
        sub = ("obj", obj)
        for k, part in enumerate(parts):
            if part[row, col]:
                sub = ("part", obj, k)
        merged = ("merge", obj) if self.scene.parent[obj] is not None else ("obj", obj)
        penalty = 0.10 if self.near_edge[row, col] else 0.0
        answers = [(sub, 0.90 if sub[0] == "part" else 0.95), (("obj", obj), 0.95),
                   (merged, 0.80 if merged[0] == "merge" else 0.95)]
        return [(key, iou - penalty + self._jitter(key)) for key, iou in answers]

    def box(self, box: np.ndarray) -> tuple[tuple, float]:
        """The (candidate key, predicted IoU) answer to a box prompt (x0, y0, x1, y1)."""
        self.prompts += 1
        if not len(self.boxes):
            return ("bg",), 0.50
        b = np.asarray(box, dtype=np.float64)
        x0 = np.maximum(self.boxes[:, 0], b[0])
        y0 = np.maximum(self.boxes[:, 1], b[1])
        x1 = np.minimum(self.boxes[:, 2], b[2])
        y1 = np.minimum(self.boxes[:, 3], b[3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        areas = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        ious = inter / (areas + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        best = int(np.argmax(ious))
        if ious[best] < 0.5:
            return ("bg",), 0.50
        return ("obj", best), 0.95


# ---------------------------------------------------------------- our everything mode


def ours(scene: Scene, settings: Any = None, boxes: np.ndarray | None = None
         ) -> tuple[list[np.ndarray], int]:
    """Our everything mode (``MobileSamSegmenter.everything``) on the scene through the
    stand-in; ``boxes`` (N, 4) xyxy photo px are extra box prompts where the strategy takes
    them. Returns the kept masks (photo size) and the number of decoder prompts."""
    from PIL import Image

    from models.segment.segmenter import (
        LOW_RES,
        EverythingSettings,
        ImageEmbedding,
        MobileSamSegmenter,
        work_size,
    )

    responder = Responder(scene)
    h, w = scene.size
    in_h, in_w = work_size((h, w))
    low_h, low_w = -(-in_h * LOW_RES // 1024), -(-in_w * LOW_RES // 1024)
    sx, sy = w / in_w, h / in_h

    def low_res(key: tuple) -> torch.Tensor:
        grid = np.full((LOW_RES, LOW_RES), -CLIP, dtype=np.float32)
        grid[:low_h, :low_w] = responder.low_logits(key)
        return torch.from_numpy(grid)

    segmenter = MobileSamSegmenter.__new__(MobileSamSegmenter)
    segmenter.model = SimpleNamespace(mask_threshold=0.0)
    segmenter.device = torch.device("cpu")
    segmenter.everything_settings = settings or EverythingSettings()

    def decode(embedding, *, points=None, boxes=None, multimask=False):
        answers = []
        if points is not None:
            for (x, y) in points[0][:, 0, :].tolist():
                found = responder.point(x * sx, y * sy)
                answers.append(found if multimask else [found[1]])
        else:
            for box in boxes.tolist():
                answers.append([responder.box(np.array(box) * [sx, sy, sx, sy])])
        logits = torch.stack([torch.stack([low_res(k) for k, _ in a]) for a in answers])
        ious = torch.tensor([[iou for _, iou in a] for a in answers], dtype=torch.float32)
        return logits, ious

    segmenter._decode = decode
    embedding = ImageEmbedding(None, (in_h, in_w), (h, w))
    image = Image.fromarray(scene.image)
    kwargs = {} if boxes is None else {"boxes": boxes}
    found = segmenter.everything(image, embedding=embedding, **kwargs)
    return [np.asarray(m.mask) for m in found], responder.prompts


# ---------------------------------------------------------------- a stand-in detector


@dataclass(frozen=True)
class StandInDetector:
    """How a stand-in detector finds a scene's objects (:func:`detector_boxes`).

    Attributes:
        name: how the comparison prints it.
        recall_large: the probability of finding an object of at least 1% of the image.
        recall_small: the probability of finding a smaller one.
        jitter: each edge of a box found moves by a normal error of this standard deviation
            times the box's width (x edges) or height (y edges).
        false_positives: boxes on nothing in particular, per object found (random positions,
            0.5-5% of the image).
    """

    name: str
    recall_large: float
    recall_small: float
    jitter: float = 0.05
    false_positives: float = 0.1


#: The detectors the comparison runs. "good" is about what a detector of OmDet-Turbo's or
#: Grounding DINO tiny's published accuracy might give on a child's photo with the vocabulary
#: (an assumption: LVIS zero-shot AP ~30, and small objects found far less often than large
#: ones, as every detector's AP_small vs AP_large in their papers); "poor" finds much less and
#: places its boxes worse, to show what a weaker detector or an unusual photo does.
STAND_IN_DETECTORS = (
    StandInDetector("good", recall_large=0.9, recall_small=0.6),
    StandInDetector("poor", recall_large=0.6, recall_small=0.3, jitter=0.10,
                    false_positives=0.3),
)


def detector_boxes(scene: Scene, detector: StandInDetector, seed: int) -> np.ndarray:
    """The boxes (N, 4) float32 xyxy photo pixels that ``detector`` gives for ``scene``
    (seeded: the same scene, detector and seed give the same boxes): each object's visible
    box, kept with the detector's recall for its size, edges jittered, clipped to the scene,
    then the false positives."""
    rng = np.random.default_rng(seed)
    h, w = scene.size
    areas = scene.areas()
    boxes = []
    for mask, area in zip(scene.masks, areas, strict=True):
        found = detector.recall_large if area >= 0.01 else detector.recall_small
        if rng.random() >= found:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0
        bw, bh = x1 - x0, y1 - y0
        x0, x1 = np.array([x0, x1]) + rng.normal(0, detector.jitter * bw, 2)
        y0, y1 = np.array([y0, y1]) + rng.normal(0, detector.jitter * bh, 2)
        boxes.append((x0, y0, x1, y1))
    for _ in range(int(round(detector.false_positives * len(boxes)))):
        side = np.sqrt(rng.uniform(0.005, 0.05) * h * w)
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        boxes.append((x0, y0, x0 + side, y0 + side))
    out = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


# ---------------------------------------------------------------- the reference


class _Predictor:
    """What ``SamAutomaticMaskGenerator`` uses of a ``SamPredictor``, answered by the
    stand-in at the original image size."""

    def __init__(self, responder: Responder) -> None:
        from mobile_sam.utils.transforms import ResizeLongestSide

        self.responder = responder
        self.transform = ResizeLongestSide(1024)
        self.device = torch.device("cpu")
        self.model = SimpleNamespace(mask_threshold=0.0)

    def set_image(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        self.scale = max(h, w) / 1024

    def reset_image(self) -> None:
        pass

    def predict_torch(self, point_coords, point_labels, multimask_output=True,
                      return_logits=True):
        answers = [self.responder.point(x * self.scale, y * self.scale)
                   for x, y in point_coords[:, 0, :].tolist()]
        masks = torch.stack([torch.stack([torch.from_numpy(self.responder.logits(k))
                                          for k, _ in a]) for a in answers])
        ious = torch.tensor([[iou for _, iou in a] for a in answers], dtype=torch.float32)
        return masks, ious, None


def reference(scene: Scene, points_per_side: int = 32) -> tuple[list[np.ndarray], int]:
    """``SamAutomaticMaskGenerator`` with its defaults (``points_per_side`` 32) on the scene
    through the stand-in. Returns its masks and the number of decoder prompts."""
    from mobile_sam import SamAutomaticMaskGenerator

    responder = Responder(scene)
    generator = SamAutomaticMaskGenerator.__new__(SamAutomaticMaskGenerator)
    _init_generator(generator, _Predictor(responder), points_per_side=points_per_side)
    anns = generator.generate(scene.image)
    return [a["segmentation"] for a in anns], responder.prompts


def _init_generator(generator: Any, predictor: _Predictor, **overrides: Any) -> None:
    """Run ``SamAutomaticMaskGenerator.__init__`` with its own defaults on a stand-in model,
    then give it the stand-in predictor."""
    from mobile_sam import SamAutomaticMaskGenerator

    class _Model:  # SamPredictor(model) is built in __init__; it only stores the model
        image_encoder = SimpleNamespace(img_size=1024)
        device = torch.device("cpu")
        mask_threshold = 0.0

    import mobile_sam.automatic_mask_generator as amg_module

    original = amg_module.SamPredictor
    amg_module.SamPredictor = lambda model: predictor
    try:
        SamAutomaticMaskGenerator.__init__(generator, _Model(), **overrides)
    finally:
        amg_module.SamPredictor = original


# ---------------------------------------------------------------- the comparison


@dataclass
class Recall:
    """One strategy's result on some scenes: recall per size class (fraction of the objects
    of at least that share of the image matched by a kept mask at IoU >= 0.8), precision
    (fraction of kept masks matching some object at IoU >= 0.8), prompts (mean per scene)."""

    recall: dict[float, float]
    precision: float
    prompts: float


def score(scenes: list[Scene], results: list[tuple[list[np.ndarray], int]]) -> Recall:
    """Recall, precision and prompts of ``results`` (one per scene) against the scenes."""
    hits = {c: [0, 0] for c in SIZE_CLASSES}
    kept = matched = prompts = 0
    for scene, (masks, count) in zip(scenes, results, strict=True):
        prompts += count
        areas = scene.areas()
        ious = np.array([[mask_iou(t, m) for m in masks] for t in scene.masks]).reshape(
            len(scene.masks), len(masks))
        best = ious.max(axis=1) if len(masks) else np.zeros(len(scene.masks))
        for c in SIZE_CLASSES:
            big = areas >= c
            hits[c][0] += int((best[big] >= RECALL_IOU).sum())
            hits[c][1] += int(big.sum())
        kept += len(masks)
        matched += int((ious.max(axis=0) >= RECALL_IOU).sum()) if len(masks) else 0
    return Recall({c: h / t if t else 1.0 for c, (h, t) in hits.items()},
                  matched / kept if kept else 1.0, prompts / len(scenes))


def compare(seeds: range = range(4), settings: Any = None) -> dict[str, Recall]:
    """Ours and the reference on the scenes of ``seeds``: {"ours": ..., "reference": ...}."""
    scenes = [make_scene(seed) for seed in seeds]
    return {"ours": score(scenes, [ours(s, settings) for s in scenes]),
            "reference": score(scenes, [reference(s) for s in scenes])}


def compare_boxes(seeds: range = range(4), detectors: tuple[StandInDetector, ...] =
                  STAND_IN_DETECTORS, settings: Any = None,
                  plain: Recall | None = None) -> dict[str, Recall]:
    """Our everything mode without boxes (``plain`` if already scored on these scenes), and
    with each stand-in detector's boxes as its first prompts, on the scenes of ``seeds``:
    {"ours": ..., "ours + good boxes": ..., ...}."""
    scenes = [make_scene(seed) for seed in seeds]
    results = {"ours": plain or score(scenes, [ours(s, settings) for s in scenes])}
    for detector in detectors:
        runs = [ours(s, settings, detector_boxes(s, detector, seed))
                for s, seed in zip(scenes, seeds, strict=True)]
        results[f"ours + {detector.name} boxes"] = score(scenes, runs)
    return results


def report(results: dict[str, Recall]) -> str:
    """The comparison as printed by the benchmark."""
    width = max(10, *(len(name) for name in results))
    lines = ["everything mode recall on the synthetic oracle (IoU >= 0.8):",
             f"{'':{width}} {'>= 1%':>8} {'>= 0.25%':>9} {'precision':>10} {'prompts':>8}"]
    for name, r in results.items():
        lines.append(f"{name:{width}} {r.recall[0.01]:8.3f} {r.recall[0.0025]:9.3f} "
                     f"{r.precision:10.3f} {r.prompts:8.0f}")
    if "reference" not in results:
        return "\n".join(lines)
    ours_r, ref = results["ours"], results["reference"]
    lines.append("ours / reference: "
                 f"{ours_r.recall[0.01] / ref.recall[0.01]:.3f} (>= 1%), "
                 f"{ours_r.recall[0.0025] / ref.recall[0.0025]:.3f} (>= 0.25%)")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if "--boxes" in sys.argv[1:]:  # everything mode with a stand-in detector's boxes first
        print(report(compare_boxes(range(12))))
    else:
        print(report(compare()))
