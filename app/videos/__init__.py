"""Videos: a video's page and its files (blueprint ``videos``); the upload itself goes
through the upload page (``app.photos.upload``) or the API (``app.api.videos``), and all of
them use ``app.videos.service``."""

from app.videos import pages
from app.videos.blueprint import bp

__all__ = ["bp", "pages"]
