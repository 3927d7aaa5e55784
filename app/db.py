"""Database tables: users, photos, the objects found in them, their words, analysis jobs, and
the inference workers' heartbeats.

Named ``db`` rather than ``models`` because ``models/`` is the vision package.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false, func, select, true
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db

#: Photo and job states, in the order a job moves through them.
STATUSES = ("queued", "running", "done", "failed")
#: What a library item is: a still photo, or a short video clip (``Photo.kind``).
ITEM_KINDS = ("photo", "video")
#: Job kinds that are an item's own analysis (its status follows theirs): a photo's
#: "analyse", a video's "video" (tracking through the clip).
ANALYSIS_KINDS = ("analyse", "video")
#: Job kinds that ask again about a photo already analysed (its status is left alone).
REPROMPT_KINDS = ("point", "words")


def utcnow() -> datetime:
    """Return the current time in UTC as a naive datetime (what SQLite and Postgres both store)."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    """A parent's or teacher's account. ``is_admin`` is never set by any form or API field."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (as PostgreSQL)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How names are read aloud (a grown-up's setting, /settings): the browser voice's name
    # (None = the device's default), the speech rate (0.5-1.5; 1 = normal) and game sounds.
    speech_voice: Mapped[str | None] = mapped_column(String(200))
    speech_rate: Mapped[float] = mapped_column(default=0.9, server_default="0.9")
    sound_effects: Mapped[bool] = mapped_column(default=True, server_default=true())

    photos: Mapped[list[Photo]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        """Hash ``password`` with scrypt (werkzeug's default KDF) and store the hash."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        """Return True if ``password`` matches the stored hash (constant-time comparison)."""
        return check_password_hash(self.password_hash, password)

    @staticmethod
    def normalise_email(email: str) -> str:
        """Return ``email`` stripped and lower-cased, the form in which emails are stored."""
        return email.strip().lower()

    @classmethod
    def by_email(cls, email: str) -> User | None:
        """Return the user with this email (case-insensitive), or None."""
        return db.session.scalar(select(cls).where(cls.email == cls.normalise_email(email)))

    @classmethod
    def admin_count(cls) -> int:
        """Return how many admins exist."""
        return db.session.scalar(select(func.count()).where(cls.is_admin.is_(True))) or 0


class Photo(db.Model):
    """One item of a family's library: an uploaded photo, stored normalised (EXIF orientation
    applied, metadata stripped), or (``kind`` "video") a short clip, stored as its video
    stream only (no audio, no metadata; ``models.video.clean_copy``).

    Photos and videos share this table so that the library, favourites, words, objects, jobs,
    ownership checks and deletion are one code path and the library one query; the columns
    that only a video has (``duration_s``, ``fps``, ``frame_count``, ``codec``) are None for a
    photo."""

    __tablename__ = "photos"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (as PostgreSQL)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    width: Mapped[int]
    height: Mapped[int]
    mode: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    weights: Mapped[str | None] = mapped_column(Text)  # JSON: {"mobile_sam": "official", ...}
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    favourite: Mapped[bool] = mapped_column(default=False, server_default=false())
    # "photo" or "video" (ITEM_KINDS). A video's width/height are its frames' as displayed
    # (rotation applied), in pixels; its length in seconds, average frame rate (frames per
    # second), number of frames and codec name (FFmpeg's: "h264", "hevc", "vp9", ...).
    kind: Mapped[str] = mapped_column(String(8), default="photo", server_default="photo")
    duration_s: Mapped[float | None]
    fps: Mapped[float | None]
    frame_count: Mapped[int | None]
    codec: Mapped[str | None] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="photos")
    words: Mapped[list[PhotoWord]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="PhotoWord.id",
    )
    objects: Mapped[list[PhotoObject]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="PhotoObject.rank",
    )
    jobs: Mapped[list[Job]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Job.created_at",
    )

    @property
    def job(self) -> Job | None:
        """The item's most recent own analysis job (a photo's "analyse", a video's "video";
        re-prompt jobs such as taps are not counted)."""
        analyses = [job for job in self.jobs if job.kind in ANALYSIS_KINDS]
        return analyses[-1] if analyses else None

    @property
    def is_video(self) -> bool:
        """True for a video clip, False for a still photo."""
        return self.kind == "video"

    @property
    def storage_prefix(self) -> str:
        """Storage key prefix of this photo's files (``u<user>/p<photo>/``)."""
        return f"u{self.user_id}/p{self.id}/"


class PhotoObject(db.Model):
    """One object found in a photo: label, whether it is a confident name (``named``; see
    ``models.result.ObjectResult.named``), its main colour's name, score (0-1), box (xyxy
    pixels), area (pixels), tint (``color``, ``#rrggbb``, as in the overlay)."""

    __tablename__ = "photo_objects"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (as PostgreSQL)

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int]
    label: Mapped[str] = mapped_column(String(200))
    named: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Its main colour as a basic colour term ("red"; models.render.color_names), or None.
    color_name: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float]
    x0: Mapped[float]
    y0: Mapped[float]
    x1: Mapped[float]
    y1: Mapped[float]
    area: Mapped[int]
    color: Mapped[str] = mapped_column(String(7))

    photo: Mapped[Photo] = relationship(back_populates="objects")

    @property
    def description(self) -> str:
        """What is said when the object is tapped: "a yellow duck" (named, with a colour),
        the label (named), or the label as stored (not named: never said as a name)."""
        from models.render.color_names import describe

        return describe(self.label, self.color_name) if self.named else self.label

    @property
    def box(self) -> list[float]:
        """The box as ``[x0, y0, x1, y1]`` in pixels of the stored photo."""
        return [self.x0, self.y0, self.x1, self.y1]


def new_job_id() -> str:
    """Return a fresh job id: 32 lowercase hex characters (uuid4)."""
    return uuid.uuid4().hex


class Job(db.Model):
    """One analysis of a photo, keyed by the id the queue and the API use."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(default=0.0)
    stage: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # "analyse" (the photo's own analysis), "video" (a video's: its objects tracked through
    # the clip; params {"frame", "points", "max_duration_s"}), or a re-prompt on a photo's
    # cached image embedding: "point" (params {"x", "y"} photo pixels) or "words" (params
    # {"prompt"}).
    kind: Mapped[str] = mapped_column(String(16), default="analyse", server_default="analyse")
    params: Mapped[str | None] = mapped_column(Text)  # JSON
    # A video job's progress in frames (as the worker counts them: frames tracked so far and
    # in all), None until tracking starts and for other kinds.
    frames_done: Mapped[int | None]
    frames_total: Mapped[int | None]
    # A re-prompt's result: JSON of models.result.AnalysisResult.to_json (None for analyses,
    # whose objects are rows and whose JSON is a file of the photo).
    result: Mapped[str | None] = mapped_column(Text)
    # An analysis showed its masks before their names (app.files.PREVIEW is stored).
    preview: Mapped[bool] = mapped_column(default=False, server_default=false())

    photo: Mapped[Photo] = relationship(back_populates="jobs")


class PhotoWord(db.Model):
    """A word on a photo's "words we learned" list: named by the child or added by a grown-up."""

    __tablename__ = "photo_words"
    __table_args__ = (UniqueConstraint("photo_id", "word"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    word: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="words")


class WorkerBeat(db.Model):
    """One inference worker process and its last heartbeat (admin panel, dead-worker checks).

    Each worker writes its row every ``WORKER_HEARTBEAT_S`` seconds from a thread, whatever
    the queue (database or Redis); a row whose ``heartbeat_at`` is older than a few beats
    belongs to a worker that died.
    """

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)  # e.g. "worker.1:42"
    queue: Mapped[str] = mapped_column(String(16))  # "database" | "redis"
    state: Mapped[str] = mapped_column(String(16), default="starting")  # starting|idle|busy|stopped
    current_job: Mapped[str | None] = mapped_column(String(32))
    jobs_done: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_job_at: Mapped[datetime | None]

    @staticmethod
    def alive_cutoff() -> datetime:
        """A worker whose last beat is older than this (``ALIVE_BEATS`` beats ago, at the
        current app's ``WORKER_HEARTBEAT_S``) is dead or stuck."""
        interval = float(current_app.config["WORKER_HEARTBEAT_S"])
        return utcnow() - timedelta(seconds=ALIVE_BEATS * interval)


#: A worker is alive while its last beat is younger than this many beat intervals.
ALIVE_BEATS = 3
