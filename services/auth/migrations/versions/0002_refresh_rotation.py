"""refresh token rotation (session family, used time), pruning indexes, no password on links

Revision ID: 0002_refresh_rotation
Revises: 0001_accounts
Create Date: 2026-11-30 04:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_refresh_rotation"
down_revision = "0001_accounts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("refresh_tokens", sa.Column("family", sa.String(length=36), nullable=True))
    op.execute("UPDATE refresh_tokens SET family = jti")  # each earlier login is its own session
    op.alter_column("refresh_tokens", "family", nullable=False)
    op.add_column("refresh_tokens", sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])
    # The pruner deletes by expiry.
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])
    op.create_index("ix_link_tokens_expires_at", "link_tokens", ["expires_at"])
    # Activation no longer takes a password from its link (see services/auth/accounts.py).
    op.drop_column("link_tokens", "password_hash")


def downgrade():
    op.add_column("link_tokens", sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.drop_index("ix_link_tokens_expires_at", "link_tokens")
    op.drop_index("ix_refresh_tokens_expires_at", "refresh_tokens")
    op.drop_index("ix_refresh_tokens_family", "refresh_tokens")
    op.drop_column("refresh_tokens", "used_at")
    op.drop_column("refresh_tokens", "family")
