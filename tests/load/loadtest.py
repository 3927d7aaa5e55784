"""Bounded load test on loopback: N users sign up, upload and poll while the worker is busy.

Run against a live server (``python -m tests.load.loadtest --base http://127.0.0.1:5000``) or
from ``tests/load/test_load.py``, which starts gunicorn and a worker itself. Prints a table of
latencies per endpoint and one JSON line; sends traffic to the given loopback address only.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "photos"
PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Stats:
    """Latencies (seconds) per endpoint, status counts, and job outcomes, shared by threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    jobs: dict[str, str] = field(default_factory=dict)
    retry_after: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, response: requests.Response, seconds: float) -> None:
        with self.lock:
            self.latencies[name].append(seconds)
            self.statuses[response.status_code] += 1

    def p95(self, name: str) -> float:
        """95th percentile latency of ``name`` in seconds (statistics.quantiles, n=20)."""
        values = self.latencies[name]
        return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def small_photos(side: int = 480) -> list[bytes]:
    """The real photos, downscaled to ``side`` px long side (JPEG), so the worker keeps up."""
    out = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        image.thumbnail((side, side))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def timed(stats: Stats, name: str, call, *args, **kwargs) -> requests.Response:
    start = time.perf_counter()
    response = call(*args, **kwargs)
    stats.record(name, response, time.perf_counter() - start)
    return response


def user_session(base: str, index: int, photos: list[bytes], stats: Stats, uploads: int,
                 deadline: float, abort: Callable[[], bool] = lambda: False,
                 signed_up: threading.Barrier | None = None) -> None:
    """One simulated parent: sign up, wait for everyone to be signed up (``signed_up``), then
    upload ``uploads`` photos within a 5 s window and poll until all are done."""
    s = requests.Session()
    page = timed(stats, "GET /register", s.get, f"{base}/register")
    token = TOKEN.search(page.text).group(1)
    timed(stats, "POST /register", s.post, f"{base}/register", data={
        "email": f"load{index}@example.com", "password": PASSWORD, "confirm": PASSWORD,
        "csrf_token": token})
    token = TOKEN.search(timed(stats, "GET /", s.get, f"{base}/").text).group(1)
    if signed_up is not None:
        signed_up.wait(timeout=max(1.0, deadline - time.monotonic()))
    time.sleep(random.Random(index).uniform(0, 5))  # "at once": all within a few seconds
    pending = []
    for n in range(uploads):
        photo = photos[(index + n) % len(photos)]
        response = timed(stats, "POST /api/v1/photos", s.post, f"{base}/api/v1/photos",
                         headers={"X-CSRFToken": token},
                         data={"mode": "grounded", "prompt": "dog, car"},
                         files={"image": ("photo.jpg", photo, "image/jpeg")})
        if response.status_code == 202:
            pending.append(response.json()["job_id"])
        elif response.status_code == 429:
            with stats.lock:
                stats.retry_after.append(response.headers.get("Retry-After", ""))
    rounds = 0
    while pending and time.monotonic() < deadline and not abort():
        rounds += 1
        for job_id in list(pending):
            job = timed(stats, "GET /api/v1/jobs/<id>", s.get, f"{base}/api/v1/jobs/{job_id}")
            if job.ok and job.json()["status"] in ("done", "failed"):
                with stats.lock:
                    stats.jobs[job_id] = job.json()["status"]
                pending.remove(job_id)
        if rounds % 5 == 1:  # a parent glancing at the library now and then
            timed(stats, "GET /api/v1/photos", s.get, f"{base}/api/v1/photos")
            timed(stats, "GET /library", s.get, f"{base}/library")
        time.sleep(1.0)  # the pages poll a job about once a second
    with stats.lock:
        for job_id in pending:
            stats.jobs[job_id] = "unfinished"


def run(base: str, users: int = 50, uploads: int = 1, burst_user_uploads: int = 0,
        timeout_s: float = 300.0, abort: Callable[[], bool] = lambda: False,
        spawn_rate: float = 10.0) -> Stats:
    """Run ``users`` concurrent users (plus one that uploads ``burst_user_uploads`` at once to
    meet the pending-job limit) against ``base``; stop polling after ``timeout_s`` or as soon
    as ``abort()`` is true (e.g. the worker process died). Users sign up ``spawn_rate`` per
    second (locust's ramp-up); once all are in, they upload within 5 s and poll at once."""
    photos, stats = small_photos(), Stats()
    deadline = time.monotonic() + timeout_s
    signed_up = threading.Barrier(users + (1 if burst_user_uploads else 0))
    threads = [threading.Thread(target=user_session, args=(
        base, i, photos, stats, uploads, deadline, abort, signed_up)) for i in range(users)]
    if burst_user_uploads:
        threads.append(threading.Thread(target=user_session, args=(
            base, users, photos, stats, burst_user_uploads, deadline, abort, signed_up)))
    for thread in threads:
        thread.start()
        time.sleep(1.0 / spawn_rate)
    for thread in threads:
        thread.join()
    return stats


def report(stats: Stats) -> dict:
    """Print a latency table and return the summary (also printed as one JSON line)."""
    print(f"{'endpoint':28} {'requests':>8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, values in sorted(stats.latencies.items()):
        print(f"{name:28} {len(values):8d} {statistics.median(values) * 1000:10.1f} "
              f"{stats.p95(name) * 1000:8.1f} {max(values) * 1000:8.1f}")
    polling = [v for k, vs in stats.latencies.items() if k.startswith("GET") for v in vs]
    summary = {
        "requests": sum(stats.statuses.values()),
        "statuses": dict(sorted(stats.statuses.items())),
        "jobs": {s: list(stats.jobs.values()).count(s) for s in set(stats.jobs.values())},
        "p95_get_ms": round(statistics.quantiles(polling, n=20)[-1] * 1000, 1),
        "p95_upload_ms": round(stats.p95("POST /api/v1/photos") * 1000, 1),
        "retry_after": stats.retry_after,
    }
    print(json.dumps(summary))
    return summary


def main() -> None:
    """Command line: ``python -m tests.load.loadtest --base URL [--users 50]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:5000")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    if not re.match(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/]", args.base + "/"):
        parser.error("load tests only target loopback addresses")
    report(run(args.base, args.users, burst_user_uploads=8, timeout_s=args.timeout))


if __name__ == "__main__":
    main()
