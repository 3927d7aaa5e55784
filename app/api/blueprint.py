"""The ``api`` blueprint (``/api/v1``), shared by the API's view modules."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
