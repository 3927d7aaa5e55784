"""Photos: the upload page, the library (list, result page, files, delete) and learning with
a photo (favourites, words we learned, speech settings), as pages (blueprint ``photos``);
the JSON API is ``app.api``, and both use ``app.photos.service``."""

from app.photos import learning, library, upload
from app.photos.blueprint import bp

__all__ = ["bp", "learning", "library", "upload"]
