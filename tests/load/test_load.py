"""50 users upload and poll at once against gunicorn + a busy worker: no 5xx, every job ends,
too many pending jobs get 429 with Retry-After. Latency figures are printed (README), not
asserted: speed is measured, not gated, in tests."""

from tests.load import loadtest
from tests.processes import app_env, migrate, web_server, worker_process


def test_fifty_users_at_once(tmp_path, service_config, capsys):
    env = app_env(tmp_path, service_config, MAX_PENDING_JOBS="3", MODEL_NUM_THREADS="1")
    migrate(env)
    worker_log = tmp_path / "worker.log"
    with web_server(env, tmp_path / "web.log") as base, worker_process(env, worker_log) as worker:
        stats = loadtest.run(base, users=50, uploads=1, burst_user_uploads=6, timeout_s=900,
                             abort=lambda: worker.poll() is not None)
        assert worker.poll() is None, worker_log.read_text()[-3000:]
    summary = loadtest.report(stats)
    with capsys.disabled():
        print("\nload test:", summary)
    assert not [s for s in stats.statuses if s >= 500], summary
    assert len(stats.jobs) == 53  # 50 users x 1 + the burst user's 3 accepted
    assert set(stats.jobs.values()) <= {"done", "failed"}, summary["jobs"]
    assert stats.retry_after and all(int(v) > 0 for v in stats.retry_after)
