"""Worker: every claimed job ends done or failed with a readable reason."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from models.errors import WeightsMissingError
from models.runtime.allocator import tune_allocator
from models.worker import JobRequest, process_one, run_worker
from tests.models.conftest import open_photo


class FakeSource:
    """In-memory JobSource that records what the worker reports."""

    def __init__(self, jobs: list[JobRequest], *, fail_complete: bool = False,
                 fail_progress: bool = False) -> None:  # fmt: skip
        self.jobs = list(jobs)
        self.progress_calls: list[tuple[str, float, str]] = []
        self.completed: dict[str, tuple[object, bytes]] = {}
        self.failed: dict[str, str] = {}
        self.fail_complete, self.fail_progress = fail_complete, fail_progress

    def claim(self) -> JobRequest | None:
        return self.jobs.pop(0) if self.jobs else None

    def progress(self, job_id: str, fraction: float, stage: str) -> None:
        if self.fail_progress:
            raise ConnectionError("database gone for a moment")
        self.progress_calls.append((job_id, fraction, stage))

    def complete(self, job_id: str, result, picture: bytes) -> None:
        if self.fail_complete:
            raise OSError("disk full")
        self.completed[job_id] = (result, picture)

    def fail(self, job_id: str, reason: str) -> None:
        self.failed[job_id] = reason


class RaisingService:
    """InferenceService stand-in whose analyze raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def analyze(self, *args, **kwargs):
        raise self.error


def job(image: Image.Image, mode: str = "everything", phrases: list[str] | None = None,
        job_id: str = "job-1") -> JobRequest:  # fmt: skip
    return JobRequest(job_id=job_id, image=image, mode=mode, phrases=phrases, key=f"key-{job_id}")


@pytest.mark.parametrize(("mode", "phrases"), [("everything", None), ("grounded", ["dog", "ball"])])
def test_success_completes_with_an_overlay_jpeg_of_photo_size(service, mode, phrases):
    photo = open_photo("dog.jpg").convert("RGB")
    source = FakeSource([job(photo, mode, phrases)])
    assert process_one(source, service) is True
    assert source.failed == {}
    result, picture = source.completed["job-1"]
    assert picture.startswith(b"\xff\xd8\xff")
    overlay = Image.open(io.BytesIO(picture))
    assert overlay.format == "JPEG" and overlay.mode == "RGB" and overlay.size == photo.size
    assert (result.width, result.height) == photo.size and result.mode == mode
    assert result.objects
    fractions = [f for _, f, _ in source.progress_calls]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert all(job_id == "job-1" for job_id, _, _ in source.progress_calls)


def test_empty_queue_returns_false():
    assert process_one(FakeSource([]), RaisingService(AssertionError("not called"))) is False


def test_model_error_fails_the_job_with_its_message():
    error = WeightsMissingError("MobileSAM weights are missing: no file at /x. Run `flask ...`")
    source = FakeSource([job(Image.new("RGB", (8, 8)))])
    assert process_one(source, RaisingService(error)) is True
    assert source.failed == {"job-1": str(error)} and source.completed == {}


def test_unexpected_exception_fails_the_job_with_a_readable_reason(caplog):
    source = FakeSource([job(Image.new("RGB", (8, 8)))])
    assert process_one(source, RaisingService(RuntimeError("boom"))) is True
    assert source.failed == {
        "job-1": "Internal error while analysing the photo: RuntimeError: boom"
    }
    assert any(r.exc_info for r in caplog.records), "traceback logged"


def test_bad_prompt_fails_the_job(service):
    source = FakeSource([job(Image.new("RGB", (64, 48)), "grounded", [])])
    assert process_one(source, service) is True
    assert "what to look for" in source.failed["job-1"]


def test_storage_failure_on_complete_fails_the_job(service):
    source = FakeSource([job(Image.new("RGB", (96, 64)))], fail_complete=True)
    assert process_one(source, service) is True
    assert source.failed["job-1"] == "The result could not be saved: OSError: disk full"


def test_progress_failures_do_not_lose_the_job(service):
    source = FakeSource([job(Image.new("RGB", (96, 64)))], fail_progress=True)
    assert process_one(source, service) is True
    assert "job-1" in source.completed and source.failed == {}


def test_run_worker_handles_jobs_until_max_jobs():
    jobs = [job(Image.new("RGB", (8, 8)), job_id=f"job-{i}") for i in range(3)]
    source = FakeSource(jobs)
    handled = run_worker(source, RaisingService(RuntimeError("x")), max_jobs=2, poll_interval=0)
    assert handled == 2 and sorted(source.failed) == ["job-0", "job-1"]
    assert len(source.jobs) == 1


def test_run_worker_stops_when_asked():
    stop = threading.Event()

    class StoppingSource(FakeSource):
        def claim(self):
            stop.set()  # as a SIGTERM handler would, while the queue is empty
            return None

    assert run_worker(StoppingSource([]), RaisingService(RuntimeError()), stop=stop) == 0


def test_run_worker_survives_a_queue_error():
    stop = threading.Event()
    calls = []

    class FlakySource(FakeSource):
        def claim(self):
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("database restarting")
            stop.set()
            return None

    assert run_worker(FlakySource([]), RaisingService(RuntimeError()), stop=stop,
                      poll_interval=0) == 0  # fmt: skip
    assert len(calls) == 2


def test_tune_allocator_is_safe_to_call_twice():
    tune_allocator()
    tune_allocator()


def reprompt(image: Image.Image, kind: str, params: dict, job_id: str = "re-1",
             phrases: list[str] | None = None) -> JobRequest:  # fmt: skip
    """A re-prompt as the database source builds it: a "words" job's phrases (none when its
    params had no prompt), a point's params."""
    if kind == "words" and phrases is None:
        phrases = []
    return JobRequest(job_id=job_id, image=image, mode="everything", phrases=phrases,
                      key="key-reprompt", kind=kind, params=params)  # fmt: skip


def test_point_job_completes_with_a_cutout_of_the_object(service):
    photo = open_photo("dog.jpg").convert("RGB")
    x, y = photo.width / 2, photo.height / 2
    source = FakeSource([reprompt(photo, "point", {"x": x, "y": y})])
    assert process_one(source, service) is True and source.failed == {}
    result, picture = source.completed["re-1"]
    assert result.mode == "point" and len(result.objects) == 1
    obj = result.objects[0]
    assert np.asarray(obj.mask)[int(y), int(x)]
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")  # a PNG: the cut-out needs alpha
    cutout = Image.open(io.BytesIO(picture))
    x0, y0, x1, y1 = obj.box
    assert cutout.format == "PNG" and cutout.mode == "RGBA"
    assert cutout.size == (round(x1 - x0), round(y1 - y0))
    alpha = np.asarray(cutout)[..., 3]
    assert np.array_equal(alpha > 0, np.asarray(obj.mask)[int(y0) : int(y1), int(x0) : int(x1)])
    assert result.to_json()["objects"][0]["named"] is obj.named


def test_words_job_is_a_grounded_analysis_with_an_overlay_jpeg(service):
    photo = open_photo("bears.jpg").convert("RGB")
    source = FakeSource([reprompt(photo, "words", {}, phrases=["teddy bear", "bear"])])
    runs = {"omdet": 0, "grounding_dino": 0}
    hooks = [service.omdet.model.decoder.register_forward_hook(
                 lambda *a: runs.__setitem__("omdet", runs["omdet"] + 1)),
             service.detector.model.register_forward_hook(
                 lambda *a: runs.__setitem__("grounding_dino", runs["grounding_dino"] + 1))]
    try:
        assert process_one(source, service) is True and source.failed == {}
    finally:
        for hook in hooks:
            hook.remove()
    assert runs == {"omdet": 1, "grounding_dino": 0}, "new words are OmDet-Turbo's"
    result, picture = source.completed["re-1"]
    assert result.mode == "grounded" and result.prompt == "teddy bear, bear"
    assert picture.startswith(b"\xff\xd8\xff")
    overlay = Image.open(io.BytesIO(picture))
    assert overlay.format == "JPEG" and overlay.size == photo.size
    assert {o.label for o in result.objects} <= {"teddy bear", "bear"}


@pytest.mark.parametrize(
    ("kind", "params", "reason"),
    [
        ("point", {}, "where on the photo"),
        ("point", {"x": "left", "y": 3}, "where on the photo"),
        ("point", {"x": 1e9, "y": 3}, "outside the photo"),
        ("words", {}, "what to look for"),
        ("dance", {}, "does not know jobs of kind 'dance'"),
    ],
)
def test_bad_reprompts_fail_with_a_readable_reason(service, kind, params, reason):
    source = FakeSource([reprompt(Image.new("RGB", (64, 48)), kind, params)])
    assert process_one(source, service) is True
    assert reason in source.failed["re-1"] and source.completed == {}


class PreviewSource(FakeSource):
    """A source that also stores previews (or fails to, with ``fail_preview``)."""

    def __init__(self, jobs: list[JobRequest], *, fail_preview: bool = False) -> None:
        super().__init__(jobs)
        self.previews: list[tuple[str, bytes, bool]] = []  # (job, png, was it before complete)
        self.fail_preview = fail_preview

    def preview(self, job_id: str, png: bytes) -> None:
        if self.fail_preview:
            raise OSError("disk full")
        self.previews.append((job_id, png, job_id not in self.completed))


def test_everything_jobs_show_their_masks_before_the_names(service):
    """A source with ``preview`` gets one PNG of the masks at screen size before the job
    completes; find-by-name jobs (no naming pass to wait for) and taps get none."""
    photo = open_photo("bears.jpg").convert("RGB")
    source = PreviewSource([job(photo, "everything", job_id="all"),
                            job(photo, "grounded", ["bear"], job_id="named")])  # fmt: skip
    assert process_one(source, service) and process_one(source, service)
    assert source.failed == {} and set(source.completed) == {"all", "named"}
    assert [(job_id, before) for job_id, _, before in source.previews] == [("all", True)]
    picture = Image.open(io.BytesIO(source.previews[0][1]))
    assert picture.format == "PNG" and max(picture.size) <= 1024
    assert abs(picture.width / picture.height - photo.width / photo.height) < 0.01
    # The preview's pixels differ from the plain photo where the masks are tinted.
    plain = np.asarray(photo.resize(picture.size), dtype=np.int16)
    assert np.abs(np.asarray(picture.convert("RGB"), dtype=np.int16) - plain).max() > 50


def test_a_preview_that_cannot_be_stored_does_not_fail_the_job(service):
    photo = open_photo("dog.jpg").convert("RGB")
    source = PreviewSource([job(photo, "everything")], fail_preview=True)
    assert process_one(source, service) is True
    assert source.failed == {} and "job-1" in source.completed


def test_a_preview_that_cannot_be_drawn_does_not_fail_the_job(service, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no picture today")

    monkeypatch.setattr("models.render.overlay.render_preview", broken)
    photo = open_photo("dog.jpg").convert("RGB")
    source = PreviewSource([job(photo, "everything")])
    assert process_one(source, service) is True
    assert source.failed == {} and "job-1" in source.completed and source.previews == []


class EmbeddingSource(FakeSource):
    """A source that also stores a done analysis's image embedding (or fails to)."""

    def __init__(self, jobs: list[JobRequest], *, fail: bool = False) -> None:
        super().__init__(jobs)
        self.embeddings: dict[str, bytes] = {}
        self.fail_store = fail

    def store_embedding(self, job_id: str, data: bytes) -> None:
        if self.fail_store:
            raise OSError("disk full")
        self.embeddings[job_id] = data


def test_an_analysis_hands_its_image_embedding_to_the_page(service):
    """The page decodes taps on the embedding the analysis computed: 2 MiB of float16, the
    cached features rounded (float16's relative step is 2**-11); taps store none."""
    import numpy as np

    from models.segment.onnx_decoder import read_embedding_file

    photo = open_photo("dog.jpg").convert("RGB")
    source = EmbeddingSource([job(photo, "grounded", ["dog"], job_id="a"),
                              reprompt(photo, "point", {"x": 10, "y": 10}, job_id="p")])
    assert process_one(source, service) and process_one(source, service)
    assert set(source.completed) == {"a", "p"} and set(source.embeddings) == {"a"}
    stored = read_embedding_file(source.embeddings["a"])
    features = service.segmenter.embed(photo, "key-a").features.numpy()
    assert np.allclose(stored, features, rtol=2**-11, atol=1e-7)


def test_a_failed_embedding_store_loses_nothing(service):
    photo = open_photo("dog.jpg").convert("RGB")
    source = EmbeddingSource([job(photo, "grounded", ["dog"], job_id="a")], fail=True)
    assert process_one(source, service)
    assert source.failed == {} and set(source.completed) == {"a"}
