"""Video benchmark: tracking one tapped object through pan and zoom clips made from the shared
photos, ours (the worker's video job) against the reference in the same run.

    python -m bench.video [--seconds 10] [--size 1280x720] [--reference-frames 6]
                          [--threads N] [--photos DIR] [--clip-4k] [--weights DIR]

Ours: ``models.video.job.run_video_job`` as the worker runs it (SAM 2.1 hiera-tiny at
``VIDEO_WORK_SIZE``, ``VIDEO_FPS`` processed frames per second, masks carried between, overlay
MP4 and JSON written), in a child process so its peak RSS (``VmHWM``) is the job's alone.
Reference: ``Sam2VideoModel`` with ``Sam2VideoProcessor``'s defaults (1024x1024 frames) on
every frame of the same clip with the same point, streamed as transformers documents it;
timed on its first ``--reference-frames`` frames, its whole-clip time extrapolated from the
median (it would take minutes). The SAM 2 weights are the real ones when ``SAM2_VIDEO_MODEL``
resolves, else SAM 2.1 hiera-tiny's architecture with random weights (the speed is the
same; the masks mean nothing, so the number of frames with the object drawn is printed).
Objects are not named (no Grounding DINO is loaded; naming a tap adds one detector pass).
Prints the load average (``/proc/loadavg``) beside each timing, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
CLIPS = (("dog.jpg", "pan"), ("bears.jpg", "zoom"))


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def make_clip(path: Path, photo: Path, kind: str, size: tuple[int, int], seconds: float) -> None:
    """A ``seconds`` clip at 30 fps: a pan (the camera moving right, 15% of the photo's width
    a second) or a zoom (10% closer a second) across ``photo``."""
    from PIL import Image

    from bench.clips import pan_clip

    image = Image.open(photo).convert("RGB")
    if kind == "pan":
        pan_clip(path, image, size=size, seconds=seconds, velocity=(0.05 * image.width, 0.0))
    else:
        pan_clip(path, image, size=size, seconds=seconds, velocity=(0.0, 0.0), zoom_per_s=0.1)


def random_sam2_dir(path: Path) -> Path:
    """SAM 2.1 hiera-tiny's architecture (``Sam2VideoConfig()``'s defaults) with random
    weights, saved for the loaders."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig()).eval().save_pretrained(path)
    return path


def ours(clip: Path, model: str, threads: int | None) -> dict[str, Any]:
    """Run the video job in a child process; its timings, peak RSS and frame counts."""
    command = [sys.executable, "-m", "bench.video", "--child", str(clip), "--model", model]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the job's process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(clip: Path, model: str, threads: int | None) -> None:
    """In the child: load the model as the worker does, run one point job, print JSON."""
    from models.config import ServiceConfig
    from models.runtime.allocator import tune_allocator
    from models.service import InferenceService
    from models.video.io import probe_video
    from models.video.job import run_video_job
    from models.video.track import frame_times, plan_frames
    from models.worker import JobRequest

    tune_allocator()
    info = probe_video(clip)
    config = ServiceConfig.from_env()
    config = ServiceConfig(
        model_dir=Path(tempfile.mkdtemp()), sam2_video_model=model, allow_unverified_weights=True,
        num_threads=threads, video_fps=config.video_fps, video_work_size=config.video_work_size,
        grounding_dino_model=str(Path(tempfile.mkdtemp()) / "none"),
    )  # fmt: skip
    service = InferenceService(config)
    t0 = time.perf_counter()
    service.video_model()
    load_s = time.perf_counter() - t0
    got: dict[str, Any] = {}

    class Source:
        def progress(self, job_id: str, fraction: float, stage: str) -> None:
            pass

        def video_preview(self, job_id: str, png: bytes) -> None:
            got.setdefault("preview_s", time.perf_counter() - started)

        def complete_video(self, job_id, result, overlay, data, poster) -> None:
            got["overlay_mb"] = overlay.stat().st_size / 1e6
            got["json_mb"] = len(data) / 1e6
            got["drawn"] = sum(1 for f in result.frames for o in f["objects"]
                               if not o.get("absent"))  # fmt: skip

        def fail(self, job_id: str, reason: str) -> None:
            raise RuntimeError(reason)

    job = JobRequest(job_id="bench", image=None, mode="point", phrases=None, key="bench",
                     kind="video", params={"frame": 0, "points": [[info.width / 2,
                                                                   info.height / 2]]},
                     video_path=clip)  # fmt: skip
    started = time.perf_counter()
    result = run_video_job(job, service, Source(), lambda f, s: None)
    total = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    processed = len(plan_frames(frame_times(clip), 0, config.video_fps))
    print(json.dumps({
        "load_s": load_s, "total_s": total, "first_masks_s": result.timings["first_masks"],
        "preview_s": got.get("preview_s"), "track_s": result.timings.get("track"),
        "decode_s": result.timings.get("decode"), "emit_s": result.timings.get("emit"),
        "frames": result.frame_count, "processed": processed,
        "peak_rss_mb": int(hwm.split()[1]) / 1024, "work_size": config.video_work_size,
        "video_fps": config.video_fps, **got,
    }))  # fmt: skip


def reference(clip: Path, model: str, frames: int, threads: int | None) -> list[float]:
    """Seconds per frame of the reference (processor defaults, every frame) on the first
    ``frames`` frames of ``clip``, the point at the centre of the first."""
    import torch
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    from models.video.io import iter_frames

    if threads:
        torch.set_num_threads(threads)
    model_ = Sam2VideoModel.from_pretrained(model, local_files_only=True).eval()
    processor = Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor())
    session = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    times = []
    for frame in iter_frames(clip):
        if frame.index >= frames:
            break
        t0 = time.perf_counter()
        inputs = processor(images=frame.image, device="cpu", return_tensors="pt")
        if frame.index == 0:
            h, w = frame.image.shape[:2]
            processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=1, input_points=[[[[w / 2, h / 2]]]],
                input_labels=[[[1]]], original_size=(h, w),
            )  # fmt: skip
        with torch.inference_mode():
            out = model_(inference_session=session, frame=inputs.pixel_values[0])
            processor.post_process_masks([out.pred_masks], original_sizes=[[h, w]],
                                         binarize=False)  # fmt: skip
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--reference-frames", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--clip-4k", action="store_true",
                        help="also a 15-s 3840x2160 pan (peak RSS of the worst clip allowed)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="a Sam2VideoModel checkpoint directory to use (unverified)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        child(args.child, args.model, args.threads)
        return 0
    from models.config import ServiceConfig
    from models.errors import ModelError
    from models.runtime.weights import resolve_sam2_video

    size = tuple(int(v) for v in args.size.split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        if args.weights is not None:
            model, status = str(args.weights), "given"
        else:
            found, status = resolve_sam2_video(ServiceConfig.from_env(os.environ))
            model = str(found)
    except ModelError:
        model, status = str(random_sam2_dir(workdir / "sam2.1-hiera-tiny-random")), "random"
    print(f"SAM 2 video weights: {status}; CPUs {os.cpu_count()}; torch threads "
          f"{args.threads or 'all'}; load {loadavg()}")
    clips = [(photo, kind, size, args.seconds) for photo, kind in CLIPS]
    if args.clip_4k:
        clips.append(("car-and-bicycle.jpg", "pan", (3840, 2160), 15.0))
    rows = []
    for photo, kind, clip_size, seconds in clips:
        clip = workdir / f"{Path(photo).stem}-{kind}-{clip_size[0]}.mp4"
        make_clip(clip, args.photos / photo, kind, clip_size, seconds)
        row: dict[str, Any] = {"clip": clip.name, "seconds": seconds, "load_before": loadavg()}
        row["ours"] = ours(clip, model, args.threads)
        row["load_after_ours"] = loadavg()
        o = row["ours"]
        per_frame = o["track_s"] / max(1, o["processed"])
        print(f"{clip.name}: ours {o['total_s']:.1f} s end to end for {o['frames']} frames "
              f"({seconds:g} s), tracking {o['track_s']:.1f} s (~{per_frame:.2f} s per "
              f"processed frame at {o['work_size']} px, {o['video_fps']:g}/s), decode "
              f"{o['decode_s']:.1f} s, waiting for drawing+encoding {o['emit_s']:.1f} s, first "
              f"masks {o['first_masks_s']:.2f} s, peak RSS {o['peak_rss_mb']:.0f} MiB, object "
              f"drawn on {o.get('drawn', 0)} frames; load {row['load_before']} -> "
              f"{row['load_after_ours']}")  # fmt: skip
        if clip_size[0] <= 1920 and args.reference_frames > 0:
            ref = reference(clip, model, args.reference_frames, args.threads)
            steady = statistics.median(ref[1:] or ref)
            row["reference_s_per_frame"] = ref
            row["reference_clip_s"] = steady * o["frames"]
            row["speedup_per_frame"] = steady / per_frame
            row["speedup_clip"] = row["reference_clip_s"] / o["total_s"]
            row["load_after_reference"] = loadavg()
            print(f"  reference: {steady:.2f} s per frame (median of frames 2-{len(ref)}, "
                  f"1024 px, every frame) -> {row['reference_clip_s']:.0f} s for the clip; "
                  f"ours {row['speedup_per_frame']:.1f}x faster per processed frame, "
                  f"{row['speedup_clip']:.1f}x end to end; load {row['load_after_reference']}")
        rows.append(row)
    print(json.dumps({"weights": status, "rows": rows}))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
