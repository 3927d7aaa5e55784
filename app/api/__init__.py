"""JSON API v1 (blueprint ``api``, under ``/api/v1``; ``docs/api.md``): photos (upload,
library, one photo, delete, favourite), videos (upload with what to follow, list, one,
delete), jobs (status, a re-prompt's result and picture),
learning with a photo (a tap, new words, the words we learned) and the on-device tap
decoder. Errors are ``{"error": "..."}``; another account's photo or job answers 404."""

from app.api import decoder, jobs, learning, photos, videos
from app.api.blueprint import bp

__all__ = ["bp", "decoder", "jobs", "learning", "photos", "videos"]
