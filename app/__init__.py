"""VisionAnything web application (Flask factory)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

from app import config as config_module
from app import extensions as ext

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the web app; ``test_config`` overrides settings read from the environment.

    Raises:
        RuntimeError: production without SECRET_KEY.
    """
    app = Flask(__name__, instance_relative_config=True,
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    instance = Path(app.instance_path)
    app.config.from_mapping(config_module.from_env(instance))
    if test_config:
        app.config.from_mapping(test_config)

    # (extensions via their module: the submodule app.db would shadow a name ``db`` here)
    ext.db.init_app(app)
    ext.migrate.init_app(app, ext.db, directory=str(ROOT / "migrations"),
                         render_as_batch=True)  # SQLite needs batch mode for ALTER TABLE
    from app.videos.blueprint import raise_upload_limit

    app.before_request(raise_upload_limit)  # first: the CSRF check below reads the form
    ext.csrf.init_app(app)
    ext.login_manager.init_app(app)

    from app import errors
    from app.db import User

    ext.login_manager.user_loader(lambda user_id: ext.db.session.get(User, int(user_id)))
    ext.login_manager.unauthorized_handler(errors.unauthorized)
    ext.login_manager.session_protection = "basic"

    from app.queue import make_queue
    from app.storage import make_storage

    # Local directory and database queue by default; S3 and Redis when configured.
    app.extensions["photo_storage"] = make_storage(app.config)
    app.extensions["job_queue"] = make_queue(app.config)

    from app import admin, api, auth, cli, health, photos, videos

    for package in (auth, photos, videos, admin, api, health):
        app.register_blueprint(package.bp)
    _template_globals(app)
    errors.register(app)
    from app import security

    security.init_app(app)
    cli.register(app)
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO)
    return app


def _template_globals(app: Flask) -> None:
    """What every page may use: whether an object is a confident name (``object_named``, for
    a ``PhotoObject`` row or an object dict) and how an unnamed one is shown
    (``unsure_label``, "Something?")."""
    from models.result import UNSURE_LABEL, is_named

    def object_named(obj: Any) -> bool:
        if isinstance(obj, dict):
            return is_named(obj.get("label"), obj.get("named"))
        return is_named(getattr(obj, "label", None), getattr(obj, "named", None))

    app.add_template_global(object_named)
    app.add_template_global(UNSURE_LABEL.capitalize(), "unsure_label")
