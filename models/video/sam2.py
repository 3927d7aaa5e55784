"""The SAM 2 video model (transformers' ``Sam2VideoModel``, SAM 2.1 hiera-tiny by default) as
a :class:`~models.video.track.MaskTracker`: prompts on one frame, then one frame at a time
(transformers' streaming inference session), with its memory kept bounded.

Work size: the released checkpoint sees 1024x1024 frames. Its image encoder's position
embedding is interpolated to the input (``Sam2HieraDetModel._get_pos_embed``) and every other
size in the model comes from the config, so :func:`load_sam2_video` sets the config to a
smaller square (``ServiceConfig.video_work_size``, 512 by default): a quarter of the pixels,
~4.5x less encoder time on this machine (random weights, 1 thread: 0.9 s vs 4.2 s per frame).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.config import ServiceConfig
from models.errors import ModelError
from models.video.track import ObjectPrompt, TrackStep

log = logging.getLogger(__name__)

# The normalisation of Sam2VideoVideoProcessor (transformers' IMAGENET_DEFAULT_MEAN/STD).
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def work_size_config(config: Any, size: int) -> Any:
    """Set a ``Sam2VideoConfig`` (or EdgeTAM's) to see ``size`` x ``size`` frames: the image,
    prompt-encoder, backbone feature (strides 4, 8, 16) and memory-attention RoPE sizes.

    Raises:
        ValueError: ``size`` is not a multiple of 32 (the encoder's windows need it).
    """
    if size % 32:
        raise ValueError(f"work size must be a multiple of 32, got {size}")
    config.image_size = size
    config.prompt_encoder_config.image_size = size
    config.vision_config.backbone_feature_sizes = [[size // 4] * 2, [size // 8] * 2,
                                                   [size // 16] * 2]  # fmt: skip
    backbone = getattr(config.vision_config, "backbone_config", None)
    if backbone is not None and hasattr(backbone, "image_size"):
        backbone.image_size = [size, size]
    config.memory_attention_rope_feat_sizes = [size // 16] * 2
    return config


def load_sam2_video(path: Path, work_size: int, device: str = "cpu") -> Any:
    """Load a ``Sam2VideoModel`` checkpoint directory (``save_pretrained`` layout, local
    files only) set to ``work_size`` (see :func:`work_size_config`), in eval mode.

    Raises:
        ModelError: the directory does not hold a loadable Sam2Video checkpoint.
    """
    from transformers import Sam2VideoConfig, Sam2VideoModel

    try:
        config = work_size_config(Sam2VideoConfig.from_pretrained(path), work_size)
        model = Sam2VideoModel.from_pretrained(path, config=config, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"The video tracking model at {path} could not be loaded: {exc}") from exc
    return model.to(device).eval()


def load_video_model(config: ServiceConfig) -> tuple[Any, str]:
    """The video model ``config`` names, found by ``models.runtime.weights.resolve_sam2_video``.

    Returns:
        (model, "official" | "unverified").

    Raises:
        WeightsMissingError, WeightsUnverifiedError: see ``resolve_sam2_video``.
        ModelError: not loadable.
    """
    from models.runtime.weights import resolve_sam2_video

    path, status = resolve_sam2_video(config)
    return load_sam2_video(path, config.video_work_size, config.device), status


class Sam2Tracker:
    """Follows objects with a ``Sam2VideoModel`` through frames handed one at a time.

    Each :meth:`start` opens a new ``Sam2VideoInferenceSession`` (streaming: frames are added
    as they come, model frame indices 0, 1, 2, ... in the order given, so memory of "the
    previous frames" is of the previously *processed* frames whichever way the clip is
    walked). After each frame the session forgets what the model can no longer read: pixels
    of earlier frames, per-frame full-size mask logits, and per-object outputs older than
    the memory window (``num_maskmem`` and ``max_object_pointers_in_encoder`` frames, plus
    the prompted frame, which the model always reads). Memory is therefore bounded by the
    window, not by the clip's length.

    Args:
        model: a loaded ``Sam2VideoModel`` (see :func:`load_sam2_video`).
        autocast_dtype: run each step under ``torch.autocast`` to this dtype (bfloat16:
            ``models.runtime.precision.autocast_dtype`` of ``MODEL_PRECISION``), or None for
            float32. On this machine's AVX512-BF16 cores a step at 512 px took ~1.5 s in
            bfloat16 against ~2.4 s in float32 (random weights, one thread, load ~3.3).
    """

    def __init__(self, model: Any, autocast_dtype: Any = None) -> None:
        import torch

        self.model = model
        self.size = int(model.config.image_size)
        self.dtype = torch.float32  # the session's tensors; autocast picks the matmul dtype
        self.autocast_dtype = autocast_dtype
        self.session: Any = None
        self._index = 0
        cfg = model.config
        self._window = max(int(cfg.num_maskmem), int(cfg.max_object_pointers_in_encoder)) + 1

    def _pixels(self, image: np.ndarray) -> Any:
        """(1, 3, S, S) float tensor of an (H, W, 3) uint8 RGB frame, as the processor makes
        it (resized to the square, rescaled and normalised with ImageNet's mean and std)."""
        import torch

        square = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA
                            if image.shape[0] > self.size else cv2.INTER_LINEAR)  # fmt: skip
        normalised = (square.astype(np.float32) - _MEAN) / _STD
        return torch.from_numpy(normalised.transpose(2, 0, 1).copy())[None].to(self.dtype)

    def start(self, image: np.ndarray, prompts: Sequence[ObjectPrompt]) -> TrackStep:
        """Open a session, give it the prompts on ``image`` and return the masks there.

        Args:
            image: (H, W, 3) uint8 RGB; the prompts' coordinates are in its pixels.
            prompts: one per object: a point, a box (xyxy) or a mask ((H, W) bool).

        Returns:
            :class:`TrackStep` with (N, 256*S/1024...) mask logits covering the whole frame.
        """
        import torch
        from transformers.models.sam2_video.modeling_sam2_video import (
            Sam2VideoInferenceSession,
        )

        if not prompts:
            raise ValueError("no objects to follow")
        height, width = image.shape[:2]
        self.session = Sam2VideoInferenceSession(
            video_height=height, video_width=width, inference_device=self.model.device,
            dtype=self.dtype,
        )  # fmt: skip
        self._index = 0
        sx, sy = self.size / width, self.size / height
        ids = []
        for prompt in prompts:
            obj_idx = self.session.obj_id_to_idx(prompt.object_id)
            ids.append(prompt.object_id)
            if prompt.mask is not None:
                mask = torch.from_numpy(np.asarray(prompt.mask, dtype=np.float32))[None, None]
                mask = torch.nn.functional.interpolate(
                    mask, size=(self.size, self.size), mode="bilinear", align_corners=False,
                    antialias=True,
                )  # fmt: skip
                self.session.add_mask_inputs(obj_idx, 0, (mask >= 0.5).to(self.dtype))
                continue
            if prompt.box is not None:
                x0, y0, x1, y1 = prompt.box
                coords = [[x0 * sx, y0 * sy], [x1 * sx, y1 * sy]]
                labels = [2, 3]  # SAM's box corner labels
            elif prompt.point is not None:
                coords = [[prompt.point[0] * sx, prompt.point[1] * sy]]
                labels = [1]
            else:
                raise ValueError(f"object {prompt.object_id} has no point, box or mask")
            self.session.add_point_inputs(obj_idx, 0, {
                "point_coords": torch.tensor([[coords]], dtype=torch.float32),
                "point_labels": torch.tensor([[labels]], dtype=torch.int32),
            })  # fmt: skip
        self.session.obj_with_new_inputs = ids
        return self._forward(image)

    def track(self, image: np.ndarray) -> TrackStep:
        """The objects' masks on the next processed frame (same size as :meth:`start`'s)."""
        if self.session is None:
            raise RuntimeError("start() first")
        return self._forward(image)

    def _forward(self, image: np.ndarray) -> TrackStep:
        import torch

        from models.runtime.precision import autocast

        with torch.inference_mode(), autocast(self.model.device.type, self.autocast_dtype):
            out = self.model(inference_session=self.session, frame_idx=self._index,
                             frame=self._pixels(image))  # fmt: skip
        logits = out.pred_masks[:, 0].float().numpy()
        present = (out.object_score_logits.reshape(-1) > 0).numpy()
        self._forget(int(out.frame_idx))
        self._index += 1
        return TrackStep(logits=logits, present=present)

    def _forget(self, frame_idx: int) -> None:
        """Drop what frames before ``frame_idx`` no longer need (see the class docstring)."""
        session = self.session
        for old in [i for i in session.processed_frames if i < frame_idx]:
            del session.processed_frames[old]
        oldest = frame_idx - self._window
        for outputs in session.output_dict_per_obj.values():
            for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
                for index, stored in list(outputs[kind].items()):
                    stored.pop("high_res_masks", None)
                    if kind == "non_cond_frame_outputs" and index < oldest:
                        del outputs[kind][index]
        for tracked in session.frames_tracked_per_obj.values():
            for index in [i for i in tracked if i < oldest]:
                del tracked[index]
