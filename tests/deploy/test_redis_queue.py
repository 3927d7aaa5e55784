"""The Redis queue's rules: what goes on the queue, an upload while Redis is down, a dead
worker's job retried once then failed with a reason, one claim per job id, and (with the
random-weight models) two workers' caches never answering for a deleted photo."""

from __future__ import annotations

import json
import zlib

import pytest
from redis import Redis
from sqlalchemy import update

from app.config import from_env
from app.db import Job, Photo, WorkerBeat, utcnow
from app.extensions import db
from app.files import ORIGINAL
from app.queue import make_queue
from app.queue import redis as queues
from app.queue.database import DatabaseJobSource, DatabaseQueue
from app.queue.redis import RedisQueue, own_queue_name, rq_queue
from app.worker import OneJobSource
from app.worker.heartbeat import WorkerHeartbeat
from app.worker.recovery import recovery_chores
from tests.deploy.conftest import Parent
from tests.processes import free_port


@pytest.fixture
def no_sweep_grace(monkeypatch):
    """Let the sweep take rows however young they are (the tests do not wait 5 s)."""
    monkeypatch.setattr(queues, "SWEEP_GRACE", queues.SWEEP_GRACE * 0)


def upload(app, email="parent@example.com"):
    return Parent(app, email).upload(mode="everything")


def test_the_queue_is_chosen_by_config(tmp_path):
    assert isinstance(make_queue({"REDIS_URL": None}), DatabaseQueue)
    queue = make_queue({"REDIS_URL": "rediss://:secret@redis.example:6380"})  # no connection yet
    assert isinstance(queue, RedisQueue)
    assert queue.queue.connection.connection_pool.connection_kwargs["ssl_cert_reqs"] is None
    # Heroku Redis's self-signed TLS: the rate limits stored in the same Redis accept it too
    heroku = {"REDIS_URL": "rediss://:secret@redis.example:6380", "SECRET_KEY": "x"}
    assert from_env(tmp_path, heroku)["RATELIMIT_STORAGE_OPTIONS"] == {"ssl_cert_reqs": None}
    verified = from_env(tmp_path, {**heroku, "REDIS_TLS_VERIFY": "1"})
    assert verified["RATELIMIT_STORAGE_OPTIONS"] == {} and verified["REDIS_TLS_VERIFY"]


def test_an_upload_puts_only_its_job_id_on_the_queue(make_app, redis_url):
    ids = upload(make_app(REDIS_URL=redis_url))
    queue = rq_queue(Redis.from_url(redis_url))
    [entry] = queue.get_job_ids()
    job = queue.fetch_job(entry)
    assert entry.startswith(ids["job_id"] + "-")
    assert job.func_name == "app.worker.perform" and job.args == [ids["job_id"]]
    payload = zlib.decompress(Redis.from_url(redis_url).hget(job.key, "data"))
    assert json.loads(payload)[2] == [ids["job_id"]]  # JSON, not pickle


def test_upload_while_redis_is_down_is_kept_and_enqueued_later(make_app, redis_url,
                                                                no_sweep_grace):
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    ids = upload(down)  # accepted: the row is the queue's truth
    up = make_app(REDIS_URL=redis_url)  # same database, Redis back
    queue = up.extensions["job_queue"]
    with up.app_context():
        assert queue.sweep() == 1
        assert queue.sweep() == 0  # waiting now: not enqueued twice
    assert [e.rsplit("-", 1)[0] for e in queue.queue.get_job_ids()] == [ids["job_id"]]


def test_a_dead_workers_job_is_retried_once_then_failed_with_a_reason(make_app, redis_url,
                                                                      no_sweep_grace):
    app = make_app(REDIS_URL=redis_url, JOB_TIMEOUT_S=60)
    ids = upload(app)
    queue = app.extensions["job_queue"]
    chores = recovery_chores(app, queue)  # what each live worker runs at every beat
    for attempt, worker in enumerate(("worker.1:10:aa", "worker.2:11:bb"), start=1):
        queue.queue.empty()  # a worker took the entry ...
        assert DatabaseJobSource(app, worker).claim_job(ids["job_id"]) is not None
        with app.app_context():  # ... and died: its heartbeat stopped long ago
            db.session.execute(update(Job).values(heartbeat_at=utcnow().replace(year=2000)))
            db.session.commit()
            chores()
            job = db.session.get(Job, ids["job_id"])
            assert job.attempts == attempt
            if attempt == 1:
                assert (job.status, job.stage) == ("queued", "waiting to retry")
                assert queue.length() == 1  # back on the Redis queue
            else:
                assert job.status == "failed" and "worker stopped" in job.error
                assert job.photo.status == "failed" and job.photo.error == job.error
                assert queue.length() == 0
    with app.app_context():
        photo = db.session.get(Photo, ids["photo_id"])
        assert app.extensions["photo_storage"].exists(photo.storage_prefix + ORIGINAL)


def test_a_handed_over_id_is_claimed_once(make_app):
    app = make_app()
    first, second = upload(app)["job_id"], upload(app, "other@example.com")["job_id"]
    source = OneJobSource(app, "worker.1:1:aa", first)
    assert source.claim().job_id == first
    assert source.claim() is None  # one job per RQ entry
    assert OneJobSource(app, "worker.2:2:bb", first).claim() is None  # already running
    with app.app_context():
        assert db.session.get(Job, first).worker == "worker.1:1:aa"
        assert db.session.get(Job, second).status == "queued"


def test_asking_again_goes_to_the_worker_holding_the_photo_then_moves_on(make_app, redis_url,
                                                                        no_sweep_grace):
    app = make_app(REDIS_URL=redis_url)
    ids = upload(app)
    queue = app.extensions["job_queue"]
    holder = "worker.1:1:aa"
    WorkerHeartbeat(app, holder, "redis").beat()  # alive
    assert DatabaseJobSource(app, holder).claim_job(ids["job_id"]) is not None
    own = rq_queue(queue.queue.connection, own_queue_name(holder))
    with app.app_context():
        db.session.execute(update(Job).values(status="done", finished_at=utcnow()))
        queue.queue.empty()
        again = Job(photo_id=ids["photo_id"])
        db.session.add(again)
        db.session.commit()
        queue.enqueue(again.id)  # the holder has the photo's image embedding
        assert (own.count, queue.length()) == (1, 0)
        assert queue.sweep() == 1  # not taken in time (busy holder): anyone may take it
        assert (own.count, queue.length()) == (1, 1)
        db.session.execute(update(WorkerBeat).values(heartbeat_at=utcnow().replace(year=2000)))
        third = Job(photo_id=ids["photo_id"])
        db.session.add(third)
        db.session.commit()
        queue.enqueue(third.id)  # a dead holder: the shared queue at once
        assert (own.count, queue.length()) == (1, 2)


def test_two_workers_never_answer_a_new_photo_from_a_deleted_ones_cache(
        make_app, redis_url, no_sweep_grace, service_config):
    """Through Redis with two workers: worker 1 analyses and taps user A's newest photo,
    which A deletes; user B's photo of the same size is analysed by worker 2, and its tap and
    new words, swept off busy worker 2's own queue, are answered by worker 1: from B's photo
    (a fresh worker's answers), with A's cached data forgotten on worker 1's claim."""
    from app.worker.heartbeat import BeatingSource
    from models.service import InferenceService
    from models.worker import process_one
    from tests.app.test_cache_keys import (
        ask_words,
        job_result,
        objects_of,
        same_size_jpeg,
        stored_photo,
        tap,
    )
    from tests.app.test_cache_keys import upload as upload_jpeg

    app = make_app(REDIS_URL=redis_url)
    queue = app.extensions["job_queue"]
    connection = queue.queue.connection
    workers = {}
    for name in ("worker.1:1:aa", "worker.2:2:bb"):
        beat = WorkerHeartbeat(app, name, "redis")
        beat.beat()  # alive
        workers[name] = (beat, InferenceService(service_config))
    one, two = workers

    def work(name: str) -> str:
        """What the RQ worker ``name`` does once: its own queue first, then the shared one."""
        beat, service = workers[name]
        for rq in (rq_queue(connection, own_queue_name(name)), queue.queue):
            if rq.count:
                entry = rq.pop_job_id()
                [job_id] = rq.fetch_job(entry).args
                assert process_one(BeatingSource(OneJobSource(app, name, job_id), beat),
                                   service)
                return job_id
        raise AssertionError(f"nothing queued for {name}")

    a, b = Parent(app, "a@example.com"), Parent(app, "b@example.com")
    a_photo = upload_jpeg(a.client, a.auth, same_size_jpeg("dog.jpg"))["photo_id"]
    work(one)
    tap(a.client, a.auth, a_photo)
    assert rq_queue(connection, own_queue_name(one)).count == 1  # sent to its holder
    work(one)
    [a_key] = workers[one][1].cached_keys()
    assert a.client.delete(f"/api/v1/photos/{a_photo}",
                           headers=a.auth.api_headers()).status_code == 204

    b_photo = upload_jpeg(b.client, b.auth, same_size_jpeg("bears.jpg"))["photo_id"]
    assert rq_queue(connection, own_queue_name(one)).count == 0  # not A's photo's holder
    work(two)
    b_tap = tap(b.client, b.auth, b_photo)
    b_words = ask_words(app, b_photo, "bear, dog")
    with app.app_context():
        queue.enqueue(b_words)
        rq_queue(connection, own_queue_name(two)).empty()  # worker 2 busy: ...
        assert queue.sweep() == 2  # ... both go on the shared queue
    assert {work(one), work(one)} == {b_tap, b_words}
    assert a_key not in workers[one][1].cached_keys()

    fresh = InferenceService(service_config)
    picture = stored_photo(app, b_photo)
    assert objects_of(job_result(app, b_tap)) == objects_of(
        {"objects": [o.to_json() for o in fresh.segment_point(picture, (320, 240)).objects]})
    assert objects_of(job_result(app, b_words)) == objects_of(
        fresh.analyze(picture, "grounded", ["bear", "dog"], new_words=True).to_json())


def test_the_rq_job_functions_dotted_name_resolves_to_the_worker():
    from rq.utils import import_attribute

    from app import worker
    from app.queue.redis import PERFORM

    assert import_attribute(PERFORM) is worker.perform


def test_a_video_goes_through_redis_to_a_worker_and_is_followed(make_app, redis_url, tmp_path,
                                                                video_service_config):
    """A video's job id goes on the RQ queue like a photo's; the worker that takes it gets the
    clip from storage and completes it (small random-weight SAM 2 video model), counted by its
    heartbeat."""
    from app.worker.heartbeat import BeatingSource
    from models.service import InferenceService
    from models.worker import process_one
    from tests.videos import make_clip, upload_video

    app = make_app(REDIS_URL=redis_url)
    parent = Parent(app)
    clip = make_clip(tmp_path / "dog.mp4").read_bytes()
    ids = upload_video(parent.client, parent.auth, clip, mode="point",
                       points="[[0, 160, 120]]").get_json()
    queue = app.extensions["job_queue"].queue
    [entry] = queue.get_job_ids()
    [job_id] = queue.fetch_job(entry).args
    assert job_id == ids["job_id"]
    beat = WorkerHeartbeat(app, "worker.1:1:aa", "redis")
    beat.beat()
    assert process_one(BeatingSource(OneJobSource(app, beat.name, job_id), beat),
                       InferenceService(video_service_config))
    video = parent.client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    assert video["status"] == "done" and len(video["objects"]) == 1
    assert parent.client.get(video["overlay_url"]).mimetype == "video/mp4"
    assert beat.jobs_done == 1 and beat.current_job is None
