"""photo_objects (was detections) with their named flag; jobs.preview

The table of objects found in photos is named for what it holds (the detector has detections
too), and stores whether each label is a confident name: the same rule as before for rows
made earlier ("something?" and "object N" are not names). A running analysis's preview is a
flag of its own instead of a note in ``jobs.result``, which now holds re-prompt results only.

Revision ID: b7c3e9a41f02
Revises: 5a1f0c2d9e47
Create Date: 2026-12-06 04:10:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7c3e9a41f02'
down_revision = '5a1f0c2d9e47'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_detections_photo_id', table_name='detections')
    op.rename_table('detections', 'photo_objects')
    with op.batch_alter_table('photo_objects') as batch_op:
        batch_op.add_column(sa.Column('named', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.create_index('ix_photo_objects_photo_id', ['photo_id'], unique=False)
    op.execute("UPDATE photo_objects SET named = false WHERE lower(trim(label)) = 'something?' "
               "OR lower(trim(label)) LIKE 'object %' OR trim(label) = ''")
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('preview', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.execute("UPDATE jobs SET preview = true, result = NULL "
               "WHERE kind = 'analyse' AND result LIKE '%\"preview\"%'")


def downgrade():
    op.execute("UPDATE jobs SET result = '{\"preview\": true}' "
               "WHERE kind = 'analyse' AND preview AND status = 'running'")
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('preview')
    with op.batch_alter_table('photo_objects') as batch_op:
        batch_op.drop_index('ix_photo_objects_photo_id')
        batch_op.drop_column('named')
    op.rename_table('photo_objects', 'detections')
    op.create_index('ix_detections_photo_id', 'detections', ['photo_id'], unique=False)
