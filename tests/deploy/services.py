"""Throwaway PostgreSQL, Redis and S3-compatible (moto) servers on 127.0.0.1 for the deploy
tests, each in a temporary directory and stopped at the end.

``make test`` installs Debian's ``postgresql`` and ``redis-server`` packages; PostgreSQL's
binaries live in ``/usr/lib/postgresql/<version>/bin`` (not on PATH), and ``initdb`` refuses
to run as root, so as root the cluster is made and run as the ``postgres`` user the package
creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.processes import free_port

MISSING = "{what} is missing: `make test` installs it (Debian package {package})."


def wait_until(check, timeout: float, what: str) -> None:
    """Call ``check()`` every 0.1 s until it returns truthy; raises TimeoutError after
    ``timeout`` seconds (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout:.0f} s")


def postgres_bindir() -> Path:
    """Directory of initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH.

    Raises:
        RuntimeError: PostgreSQL is not installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        raise RuntimeError(MISSING.format(what="PostgreSQL (initdb)", package="postgresql"))
    return Path(initdb).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a fresh PostgreSQL cluster on a free loopback port; yields the server URL
    ``postgresql://postgres@127.0.0.1:<port>`` (trust authentication, loopback only).

    Raises:
        RuntimeError: PostgreSQL missing, or running as root without a ``postgres`` user.
    """
    bindir = postgres_bindir()
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError(MISSING.format(what="the postgres user",
                                              package="postgresql")) from exc
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="va-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", free_port()
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True)
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l",
                        str(root / "server.log"), "-w", "-t", "60", "-o", options, "start"],
                       check=True, capture_output=True)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "-w", "stop"], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """Create an empty database on the server; returns its SQLAlchemy URL (psycopg 3)."""
    import psycopg

    name = "va_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("postgresql://", "postgresql+psycopg://") + "/" + name


@contextmanager
def redis_server() -> Iterator[str]:
    """Run redis-server (no persistence) on a free loopback port; yields ``redis://...``.

    Raises:
        RuntimeError: redis-server is not installed.
    """
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError(MISSING.format(what="redis-server", package="redis-server"))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="va-redis-") as tmp:
        proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", tmp,
                                 "--protected-mode", "yes"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            from redis import Redis

            client = Redis(host="127.0.0.1", port=port)
            wait_until(client.ping, 20, "redis-server")
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextmanager
def s3_server() -> Iterator[str]:
    """Run moto's S3-compatible server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url, timeout=1).status_code < 500, 60, "moto server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


#: Credentials moto accepts (any); set explicitly so no real AWS configuration is used.
S3_CREDENTIALS = {"S3_ACCESS_KEY_ID": "test", "S3_SECRET_ACCESS_KEY": "test",
                  "S3_REGION": "us-east-1"}


def create_bucket(endpoint: str) -> str:
    """Create a fresh bucket on the S3 server at ``endpoint``; returns its name."""
    import boto3

    name = "va-" + uuid.uuid4().hex[:12]
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket=name)
    return name
