"""Smoke test of the video benchmark (``python -m bench.video``) on the small random SAM 2
video checkpoint: it makes its clips, runs the job and the reference, prints a line per clip
and one JSON line. Speed is not checked here."""

from __future__ import annotations

import json

from bench.video import main


def test_bench_video_runs_ours_and_the_reference(sam2_video_dir, capsys) -> None:
    assert main(["--seconds", "0.6", "--size", "128x96", "--reference-frames", "2",
                 "--threads", "1", "--weights", str(sam2_video_dir)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    values = json.loads(lines[-1])
    assert values["weights"] == "given" and len(values["rows"]) == 2
    for row in values["rows"]:
        ours = row["ours"]
        assert ours["frames"] == 18 and ours["processed"] == 4  # 0, 6, 12 and the last
        assert ours["total_s"] > 0 and ours["peak_rss_mb"] > 0 and ours["first_masks_s"] > 0
        assert len(row["reference_s_per_frame"]) == 2 and row["speedup_per_frame"] > 0
    assert sum("load" in line for line in lines[:-1]) >= 3  # every timing with its load
