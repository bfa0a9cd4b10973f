"""library: full-text search vector over title and description, owner's newest-first index

Revision ID: 0003_library
Revises: 0001
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0003_library"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCH_VECTOR_SQL = ("setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
                     "setweight(to_tsvector('simple', coalesce(description, '')), 'B')")


def upgrade():
    op.add_column("videos", sa.Column("search_vector", TSVECTOR(),
                                      sa.Computed(SEARCH_VECTOR_SQL, persisted=True), nullable=False))
    op.create_index("ix_videos_search_vector", "videos", ["search_vector"], postgresql_using="gin")
    op.create_index("ix_videos_owner_newest", "videos",
                    ["owner_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")])
    op.create_table(
        "tus_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=True),
        sa.CheckConstraint('"offset" BETWEEN 0 AND length', name="offset_within_length"),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tus_uploads_owner_id", "tus_uploads", ["owner_id"])
    op.create_index("ix_tus_uploads_expires_at", "tus_uploads", ["expires_at"])


def downgrade():
    op.drop_table("tus_uploads")
    op.drop_index("ix_videos_owner_newest", table_name="videos")
    op.drop_index("ix_videos_search_vector", table_name="videos")
    op.drop_column("videos", "search_vector")
