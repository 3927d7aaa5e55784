"""The ``photos`` blueprint, shared by the upload, library and learning views."""

from flask import Blueprint

bp = Blueprint("photos", __name__)
