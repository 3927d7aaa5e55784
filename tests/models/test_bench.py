"""Smoke test of the benchmark (``python -m models.bench``) on the small random fixtures: it
runs end to end and ends with the JSON line issue 3 asks for. Speed is not checked here."""

from __future__ import annotations

import json

from models.bench import main
from tests.models.conftest import open_photo

KEYS = {
    "grounded_s", "everything_s", "reprompt_s", "encoder_s", "detector_s", "peak_rss_mb",
    "everything_reference_s", "grounded_reference_s", "weights",
}  # fmt: skip


def test_bench_prints_a_table_and_a_json_line(service, tmp_path, capsys):
    open_photo("dog.jpg").convert("RGB").resize((320, 213)).save(tmp_path / "dog.jpg")
    values = main(
        ["--quick", "--photos", str(tmp_path), "--megapixels", "0.1",
         "--reference-points", "4"],
        service=service,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == values
    assert KEYS <= set(values) and values["weights"] == "random"
    assert values["grounded_s"] > 0 and values["reprompt_s"] > 0 and values["peak_rss_mb"] > 0
    assert values["everything_reference_s"] > 0  # the reference ran on the same weights
    assert any("recall" in line for line in lines), "the recall check says what it found"
    assert any(line.startswith("weights: random") for line in lines)
