"""videos in the library: photos.kind and a video's length, frame rate, frame count and codec;
jobs.frames_done / frames_total

A video is a row of ``photos`` with ``kind = 'video'`` rather than a table of its own, so that
the library stays one plain query over one table, and favourites, words, objects, jobs,
ownership checks and deletion (with the files under the item's storage prefix) stay one code
path. Every existing row is a photo.

Revision ID: f1c6a8d2e4b7
Revises: d4e8f1a2b3c5
Create Date: 2026-12-07 09:00:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f1c6a8d2e4b7'
down_revision = 'd4e8f1a2b3c5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('photos') as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='photo',
                                      nullable=False))
        batch_op.add_column(sa.Column('duration_s', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('fps', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('frame_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('codec', sa.String(length=16), nullable=True))
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('frames_done', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('frames_total', sa.Integer(), nullable=True))


def downgrade():
    # Videos cannot be photos: they and their jobs go (their files stay in storage).
    op.execute("DELETE FROM photos WHERE kind = 'video'")
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('frames_total')
        batch_op.drop_column('frames_done')
    with op.batch_alter_table('photos') as batch_op:
        batch_op.drop_column('codec')
        batch_op.drop_column('frame_count')
        batch_op.drop_column('fps')
        batch_op.drop_column('duration_s')
        batch_op.drop_column('kind')
