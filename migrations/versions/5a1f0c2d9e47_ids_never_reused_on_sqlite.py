"""Ids of users, photos, objects and words never reused on SQLite (AUTOINCREMENT)

Without AUTOINCREMENT, SQLite gives a new row the largest id in use plus one, so deleting the
newest photo and uploading another gave the new photo the deleted one's id (and its storage
prefix, and any worker cache keyed by it). With it, ids only grow, as PostgreSQL's sequences
already do; on PostgreSQL this migration changes nothing.

Revision ID: 5a1f0c2d9e47
Revises: 8ed7bb57190e
Create Date: 2026-12-06 03:50:00
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '5a1f0c2d9e47'
down_revision = '8ed7bb57190e'
branch_labels = None
depends_on = None

# Parents before children: each copy is made while the tables it references exist.
TABLES = ("users", "photos", "detections", "photo_words")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade():
    _recreate(True)


def downgrade():
    _recreate(False)
