"""Configuration read from the environment when the app is created (never at import)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from models.config import ServiceConfig

#: Largest upload accepted, in bytes (a 12-megapixel phone JPEG is 3-8 MB; HEIC less).
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Longest video accepted, in seconds.
DEFAULT_MAX_VIDEO_S = 15.0
#: Largest video upload accepted, in MiB: 15 s of the largest phone video (4K at 60 frames per
#: second, HEVC at ~50 Mbit/s, or H.264 at ~50 Mbit/s for 4K at 30) is 90-95 MiB.
DEFAULT_MAX_VIDEO_MB = 100.0


def database_url(environ: Mapping[str, str], instance_path: Path) -> str:
    """Return the SQLAlchemy URL: ``DATABASE_URL`` or a SQLite file in the instance folder.

    Heroku still hands out ``postgres://`` URLs, which SQLAlchemy 2 refuses; they are rewritten
    to ``postgresql+psycopg://`` (psycopg 3).
    """
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{instance_path / 'visionanything.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key(environ: Mapping[str, str], instance_path: Path, production: bool) -> str:
    """Return ``SECRET_KEY``; in development, a random key kept in the instance folder.

    Raises:
        RuntimeError: in production (``FLASK_ENV``/``APP_ENV`` = production) without SECRET_KEY.
    """
    key = environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    if production:
        raise RuntimeError("SECRET_KEY must be set in production (for example: "
                           "heroku config:set SECRET_KEY=$(python -c 'import secrets; "
                           "print(secrets.token_hex(32))'))")
    path = instance_path / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    """Return the first of the variables ``names`` that is set and not blank, else None."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def s3_settings(environ: Mapping[str, str]) -> dict[str, str | None]:
    """Return the S3 storage settings: ``S3_BUCKET`` (unset: local storage), ``S3_PREFIX``,
    ``S3_ENDPOINT_URL`` (non-AWS servers), ``S3_REGION``, ``S3_ACCESS_KEY_ID``,
    ``S3_SECRET_ACCESS_KEY``; each falls back on the AWS_* variable and then on the
    Bucketeer add-on's BUCKETEER_* variable. Credentials left None come from boto3's chain."""
    return {
        "S3_BUCKET": _first(environ, "S3_BUCKET", "BUCKETEER_BUCKET_NAME"),
        "S3_PREFIX": _first(environ, "S3_PREFIX") or "",
        "S3_ENDPOINT_URL": _first(environ, "S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
        "S3_REGION": _first(environ, "S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION",
                            "BUCKETEER_AWS_REGION"),
        "S3_ACCESS_KEY_ID": _first(environ, "S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID",
                                   "BUCKETEER_AWS_ACCESS_KEY_ID"),
        "S3_SECRET_ACCESS_KEY": _first(environ, "S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY",
                                       "BUCKETEER_AWS_SECRET_ACCESS_KEY"),
    }


def redis_tls_options(url: str, verify: bool) -> dict[str, None]:
    """Extra ``redis.from_url`` options for ``url``: ``{"ssl_cert_reqs": None}`` for a
    ``rediss://`` URL unless ``verify`` (REDIS_TLS_VERIFY), since Heroku Redis serves TLS with
    a self-signed certificate (Heroku's documented client setting); else nothing."""
    return {"ssl_cert_reqs": None} if url.startswith("rediss://") and not verify else {}


def from_env(instance_path: Path, environ: Mapping[str, str] = os.environ) -> dict:
    """Build the Flask config mapping from environment variables.

    Variables: SECRET_KEY, DATABASE_URL, STORAGE_DIR, MODEL_DIR, MOBILE_SAM_CHECKPOINT,
    GROUNDING_DINO_MODEL, OMDET_TURBO_MODEL, MAX_UPLOAD_MB (photos), MAX_VIDEO_MB and
    MAX_VIDEO_S (videos), APP_ENV (``production`` enables secure cookies and requires
    SECRET_KEY), REDIS_URL (the Redis queue instead of the database one), JOB_TIMEOUT_S,
    WORKER_HEARTBEAT_S, S3_* (see :func:`s3_settings`).
    """
    production = environ.get("APP_ENV", environ.get("FLASK_ENV", "")).lower() == "production"
    redis_verify = environ.get("REDIS_TLS_VERIFY", "").lower() in ("1", "true", "yes")
    ratelimit_storage = (environ.get("RATELIMIT_STORAGE_URI") or environ.get("REDIS_URL")
                         or "memory://")
    max_mb = float(environ.get("MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_BYTES / 2**20))
    max_video_mb = float(environ.get("MAX_VIDEO_MB", DEFAULT_MAX_VIDEO_MB))
    return {
        "SECRET_KEY": _secret_key(environ, instance_path, production),
        "SQLALCHEMY_DATABASE_URI": database_url(environ, instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "STORAGE_DIR": environ.get("STORAGE_DIR", str(instance_path / "storage")),
        # The request size limit of every route; the video uploads raise it to
        # MAX_VIDEO_BYTES for their own requests (``request.max_content_length``).
        "MAX_CONTENT_LENGTH": int(max_mb * 2**20),
        "MAX_VIDEO_BYTES": int(max_video_mb * 2**20),
        "MAX_VIDEO_S": float(environ.get("MAX_VIDEO_S", DEFAULT_MAX_VIDEO_S)),
        "MAX_STORED_SIDE": int(environ.get("MAX_STORED_SIDE", "4096")),
        "INFERENCE": ServiceConfig.from_env(environ),
        "PRODUCTION": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        # Workers beat every WORKER_HEARTBEAT_S from a thread, so a job whose worker has been
        # silent for JOB_TIMEOUT_S belongs to a dead worker: it is retried once, then failed.
        "JOB_TIMEOUT_S": float(environ.get("JOB_TIMEOUT_S", "120")),
        "WORKER_HEARTBEAT_S": float(environ.get("WORKER_HEARTBEAT_S", "10")),
        "REDIS_URL": environ.get("REDIS_URL", "").strip() or None,
        "REDIS_TLS_VERIFY": redis_verify,  # see redis_tls_options
        **s3_settings(environ),
        "MAX_PENDING_JOBS": int(environ.get("MAX_PENDING_JOBS", "5")),
        "RATELIMIT_ENABLED": environ.get("RATELIMIT_ENABLED", "1").lower() not in ("0", "false"),
        "RATELIMIT_STORAGE_URI": ratelimit_storage,
        "RATELIMIT_STORAGE_OPTIONS": redis_tls_options(ratelimit_storage, redis_verify),
    }
