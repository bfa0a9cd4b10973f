"""renditions: state `growing` (the first rung is playable while it is still being encoded)

Revision ID: 0004_growing
Revises: 0003_library
Create Date: 2026-12-04
"""
from alembic import op

revision = "0004_growing"
down_revision = "0003_library"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_constraint("state_known", "renditions", type_="check")
    op.create_check_constraint("state_known", "renditions", "state IN ('pending', 'growing', 'ready', 'failed')")


def downgrade():
    op.execute("UPDATE renditions SET state = 'pending' WHERE state = 'growing'")
    op.drop_constraint("state_known", "renditions", type_="check")
    op.create_check_constraint("state_known", "renditions", "state IN ('pending', 'ready', 'failed')")
