"""Admin panel: users (list, promote, demote, delete) and the workers' health (blueprint
``admin``, under ``/admin``)."""

from app.admin.routes import bp

__all__ = ["bp"]
