"""photo_objects.color_name: an object's main colour as a basic colour term

Revision ID: d4e8f1a2b3c5
Revises: b7c3e9a41f02
Create Date: 2026-12-06 04:30:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd4e8f1a2b3c5'
down_revision = 'b7c3e9a41f02'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('photo_objects') as batch_op:
        batch_op.add_column(sa.Column('color_name', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('photo_objects') as batch_op:
        batch_op.drop_column('color_name')
