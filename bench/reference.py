"""The reference settings, run on the service's own weights beside ours: ``SamPredictor``
(``set_image``, ``predict``, ``predict_torch``), ``SamAutomaticMaskGenerator`` with its
defaults (32 points per side), Grounding DINO as its model card runs it (processor defaults:
shortest edge 800, longest 1333; float32) followed by ``SamPredictor.predict_torch`` on its
boxes; and the recall of the reference's masks among ours on the photos."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image

from bench.runs import Stage, decode, encode_upload, five_boxes, peak_rss_mb, phrases_for, timed

MAX_DETECTIONS = 20  # models.detect.detector.MAX_DETECTIONS, applied to the reference too
RECALL_MIN_AREA = 0.01  # reference masks of at least 1% of the image ...
RECALL_IOU = 0.8  # ... need one of ours with mask IoU >= 0.8 ...
RECALL_TARGET = 0.9  # ... in at least 90% of cases


class Reference:
    """The reference stack on ``service``'s loaded weights (one ``SamPredictor`` on its
    MobileSAM; a float32 Grounding DINO of its own, :func:`reference_grounding_dino`).

    Args:
        service: a loaded ``models.service.InferenceService``.
        photos: how many photos get the slow end-to-end reference runs (~80 s each at full
            size on 2 cores).
        points: points per side of the reference everything mode (its default, 32).
    """

    def __init__(self, service: Any, *, photos: int = 1, points: int = 32) -> None:
        from models.segment.segmenter import import_mobile_sam

        self.service = service
        self.photos = photos
        self.points = points
        self.mobile_sam = import_mobile_sam()
        self.predictor = self.mobile_sam.SamPredictor(service.segmenter.model)

    def time_stages(self, name: str, photo: Image.Image, stages: dict[str, Stage]) -> None:
        """Append the reference's per-photo stage times (seconds) to ``stages``: encoder,
        decoder (one point; five boxes batched) and Grounding DINO at shortest edge 800 on
        the phrases asked of ``name``."""
        import torch

        predictor = self.predictor
        array = np.asarray(photo)
        stages["encoder"].reference.append(timed(predictor.set_image, array)[0])
        point = np.array([[photo.width / 2, photo.height / 2]])
        stages["decoder_point"].reference.append(
            timed(predictor.predict, point, np.array([1]), multimask_output=True)[0])
        boxes = predictor.transform.apply_boxes(five_boxes(photo), array.shape[:2])
        with torch.inference_mode():
            stages["decoder_5_boxes"].reference.append(timed(
                predictor.predict_torch, None, None, boxes=torch.as_tensor(boxes),
                multimask_output=False)[0])  # fmt: skip
        stages["detector"].reference.append(
            timed(reference_detect, self.service, photo, phrases_for(name))[0])

    def run(
        self,
        photos: dict[str, Image.Image],
        big: dict[str, Image.Image],
        stages: dict[str, Stage],
        extra: dict[str, Any],
    ) -> None:
        """End to end on the first ``self.photos`` photos (find by name on the 12-MP copies in
        ``big``; everything mode with ``SamAutomaticMaskGenerator`` on ``photos``), appended to
        ``stages``; the recall of its masks >= ``RECALL_MIN_AREA`` of the image among ours at
        mask IoU >= ``RECALL_IOU`` and the peak RSS go to ``extra``."""
        import torch

        from models.render.overlay import encode_jpeg, render_overlay
        from models.result import ObjectResult

        service, predictor = self.service, self.predictor
        sam = service.segmenter.model

        def grounded_reference(data: bytes, phrases: list[str]) -> bytes:
            photo = decode(data)
            found = reference_detect(service, photo, phrases)
            array = np.asarray(photo)
            predictor.set_image(array)
            objects = []
            if found:
                boxes = torch.as_tensor(predictor.transform.apply_boxes(
                    np.array([d[2] for d in found]), array.shape[:2]))  # fmt: skip
                masks, _, _ = predictor.predict_torch(None, None, boxes=boxes,
                                                      multimask_output=False)  # fmt: skip
                for (label, score, box), mask in zip(found, masks[:, 0].numpy(), strict=True):
                    objects.append(
                        ObjectResult(label, score, box, mask, int(mask.sum()), (200, 0, 0)))
            return encode_jpeg(render_overlay(photo, objects))

        names = list(photos)[: self.photos]
        for name in names:
            stages["grounded"].reference.append(
                timed(grounded_reference, encode_upload(big[name]), phrases_for(name))[0])
        recall_hits, recall_total = 0, 0
        for name in names:
            photo = photos[name]
            generator = self.mobile_sam.SamAutomaticMaskGenerator(
                sam, points_per_side=self.points)
            with torch.inference_mode():
                seconds, records = timed(generator.generate, np.asarray(photo))
            stages["everything"].reference.append(seconds)
            ours = [np.asarray(m.mask) for m in service.segmenter.everything(photo)]
            min_area = RECALL_MIN_AREA * photo.width * photo.height
            for record in records:
                if record["area"] < min_area:
                    continue
                recall_total += 1
                best = max((mask_iou(record["segmentation"], m) for m in ours), default=0.0)
                recall_hits += best >= RECALL_IOU
            extra.setdefault("reference_masks", []).append(len(records))
        extra["recall_hits"], extra["recall_total"] = recall_hits, recall_total
        extra["peak_rss_with_reference_mb"] = round(peak_rss_mb())


def reference_detect(service: Any, photo: Image.Image, phrases: list[str]) -> list[Any]:
    """Grounding DINO as its model card runs it: processor defaults (shortest edge 800,
    longest 1333) on the full photo, float32 (:func:`reference_grounding_dino`),
    ``post_process_grounded_object_detection`` at 0.35; the 20 best boxes kept (as ours:
    random weights put hundreds above 0.35, and SAM's batched decoding of them at 12 MP needs
    ~50 MB each)."""
    import torch

    from models.runtime.weights import resolve_grounding_dino

    processor = service.detector.processor
    model = reference_grounding_dino(str(resolve_grounding_dino(service.config)[0]))
    caption = ". ".join(phrases) + "."
    inputs = processor(images=photo, text=caption, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    results = processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=0.35, text_threshold=0.25,
        target_sizes=[(photo.height, photo.width)],
    )[0]  # fmt: skip
    found = [(str(label), float(score), tuple(box.tolist())) for label, score, box in
             zip(results["text_labels"], results["scores"], results["boxes"], strict=True)]
    return sorted(found, key=lambda d: d[1], reverse=True)[:MAX_DETECTIONS]


@functools.cache
def reference_grounding_dino(path: str) -> Any:
    """transformers' ``GroundingDinoForObjectDetection`` loaded from ``path`` as it comes
    (float32 weights, eval mode), once per path: the service's detector stores its weights in
    bfloat16 where it runs under autocast (``models.runtime.precision.store_for_autocast``), so the
    float32 reference needs a copy of its own (file-mapped weights, ~660 MB at full size)."""
    from transformers import GroundingDinoForObjectDetection

    from models.detect.detector import quiet_loading

    with quiet_loading():  # its "Loading weights" bar would cut into the table
        model = GroundingDinoForObjectDetection.from_pretrained(path, local_files_only=True)
    return model.eval()


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks of the same size."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
