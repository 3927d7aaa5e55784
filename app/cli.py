"""Command-line tools: ``flask users ...``, ``flask models download``, ``flask worker``."""

from __future__ import annotations

import logging
import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.auth.forms import MIN_PASSWORD
from app.db import User
from app.extensions import db

users_cli = AppGroup("users", help="Manage user accounts.")
models_cli = AppGroup("models", help="Manage model weights.")


@users_cli.command("create-admin")
@click.argument("email")
@click.password_option(help="Asked for when not given.")
def create_admin(email: str, password: str) -> None:
    """Create an admin account EMAIL (or make an existing account an admin)."""
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"Use at least {MIN_PASSWORD} characters.")
    user = User.by_email(email)
    if user is None:
        user = User(email=User.normalise_email(email))
        db.session.add(user)
    user.set_password(password)
    user.is_admin = True
    db.session.commit()
    click.echo(f"{user.email} is an admin.")


@models_cli.command("download")
@click.option("--only", type=click.Choice(["mobile-sam", "grounding-dino", "omdet-turbo",
                                          "sam2-video"]),
              default=None, help="Download one model only.")
def download_models(only: str | None) -> None:
    """Download MobileSAM, Grounding DINO, OmDet-Turbo and SAM 2 video weights into MODEL_DIR
    (checksums verified).

    Weights already present and verified are kept as they are, without asking the network.
    """
    from dataclasses import replace

    from models.errors import ModelError
    from models.runtime.weights import (
        OFFICIAL,
        download_grounding_dino,
        download_mobile_sam,
        download_omdet_turbo,
        download_sam2_video,
        resolve_grounding_dino,
        resolve_mobile_sam,
        resolve_omdet_turbo,
        resolve_sam2_video,
    )

    config = replace(current_app.config["INFERENCE"], allow_unverified_weights=True)
    wanted = [("mobile-sam", "MobileSAM", resolve_mobile_sam,
               lambda: download_mobile_sam(config.model_dir)),
              ("grounding-dino", "Grounding DINO", resolve_grounding_dino,
               lambda: download_grounding_dino(config.model_dir, config.grounding_dino_model)),
              ("omdet-turbo", "OmDet-Turbo", resolve_omdet_turbo,
               lambda: download_omdet_turbo(config.model_dir, config.omdet_turbo_model)),
              ("sam2-video", "SAM 2 video", resolve_sam2_video,
               lambda: download_sam2_video(config.model_dir, config.sam2_video_model))]
    failed = []
    for key, name, resolve, download in wanted:
        if only not in (None, key):
            continue
        try:
            path, provenance = resolve(config)
            if provenance == OFFICIAL:
                click.echo(f"{name} weights already present and verified: {path}")
                continue
        except ModelError:
            pass
        try:
            click.echo(f"{name} weights: {download()}")
        except ModelError as exc:
            click.echo(f"{name}: {exc}", err=True)
            failed.append(name)
    if failed:
        raise click.ClickException(f"could not download {', '.join(failed)} (see above).")


@click.command("worker")
@click.option("--max-jobs", type=int, default=None, help="Stop after this many jobs.")
@click.option("--poll", type=float, default=0.25,
              help="Seconds between polls of the database queue (Redis pushes jobs). A poll "
                   "is one indexed query; a job waits half of this on average before it "
                   "starts.")
@click.option("--fetch-weights", is_flag=True,
              help="First download missing weights into MODEL_DIR (dynos boot with an empty "
                   "disk); a failed download is reported and the worker starts anyway.")
@click.pass_context
def worker_command(ctx: click.Context, max_jobs: int | None, poll: float,
                   fetch_weights: bool) -> None:
    """Run an inference worker of the configured queue (Redis with REDIS_URL, else the
    database): loads the models once, then analyses queued photos until SIGTERM."""
    from app.worker import run_worker_process

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Below the web server's priority: on a shared machine, pages and polls stay quick while
    # a model runs (WORKER_NICE=0 turns this off).
    os.nice(int(os.environ.get("WORKER_NICE", "10")))
    if fetch_weights:
        try:
            ctx.invoke(download_models, only=None)
        except click.ClickException as exc:
            logging.getLogger(__name__).error("weights: %s", exc.format_message())
    handled = run_worker_process(current_app._get_current_object(), max_jobs=max_jobs,
                                 poll_interval=poll)
    click.echo(f"worker stopped after {handled} job(s)")


def register(app: Flask) -> None:
    """Add the commands to ``app.cli``."""
    app.cli.add_command(users_cli)
    app.cli.add_command(models_cli)
    app.cli.add_command(worker_command)
