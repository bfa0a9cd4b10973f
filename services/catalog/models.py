"""Videos and their renditions (one row per rung of the HLS ladder)."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

db = SQLAlchemy()

UPLOADED, QUEUED, PROCESSING, READY, FAILED = "uploaded", "queued", "processing", "ready", "failed"
VIDEO_STATUSES = (UPLOADED, QUEUED, PROCESSING, READY, FAILED)
PENDING, GROWING = "pending", "growing"
# growing: published while it is still being encoded (playable; its playlist gains segments).
RENDITION_STATES = (PENDING, GROWING, READY, FAILED)
UNFINISHED = (PENDING, GROWING)
RUNGS = ("360p", "480p", "720p", "1080p")
# 'simple': no language-specific stemming, titles come in every language.
SEARCH_CONFIG = "simple"
SEARCH_VECTOR_SQL = (f"setweight(to_tsvector('{SEARCH_CONFIG}', coalesce(title, '')), 'A') || "
                     f"setweight(to_tsvector('{SEARCH_CONFIG}', coalesce(description, '')), 'B')")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Video(db.Model):
    __tablename__ = "videos"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {VIDEO_STATUSES}", name="status_known"),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="progress_percent"),
        # The public list: ready videos, newest first.
        sa.Index("ix_videos_ready_newest", sa.text("created_at DESC"), sa.text("id DESC"),
                 postgresql_where=sa.text("status = 'ready'")),
        # The reconciler's scan for videos with work left.
        sa.Index("ix_videos_status_updated_at", "status", "updated_at"),
        # Full-text search over title and description (GET /api/video/?q=...).
        sa.Index("ix_videos_search_vector", "search_vector", postgresql_using="gin"),
        # "My videos": one owner's, newest first.
        sa.Index("ix_videos_owner_newest", "owner_id", sa.text("created_at DESC"), sa.text("id DESC")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    category: Mapped[str] = mapped_column(sa.String(100))
    owner_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16), default=UPLOADED)
    progress: Mapped[int] = mapped_column(default=0)
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    duration: Mapped[float | None]
    source_width: Mapped[int | None]
    source_height: Mapped[int | None]
    has_audio: Mapped[bool | None]
    original_filename: Mapped[str] = mapped_column(sa.String(255))
    original_path: Mapped[str | None] = mapped_column(sa.String(400))
    thumbnail_path: Mapped[str | None] = mapped_column(sa.String(400))
    # Kept by PostgreSQL itself: title weighs more than description.
    search_vector: Mapped[str] = mapped_column(TSVECTOR, sa.Computed(SEARCH_VECTOR_SQL, persisted=True),
                                               deferred=True)

    renditions: Mapped[list["Rendition"]] = relationship(
        back_populates="video", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Rendition.id",
    )

    def rendition(self, rung: str) -> "Rendition":
        """The row of `rung`, created as pending when the transcoder reports a rung not planned."""
        for rendition in self.renditions:
            if rendition.rung == rung:
                return rendition
        rendition = Rendition(rung=rung, state=PENDING, percent=0)
        self.renditions.append(rendition)
        return rendition

    def renditions_in(self, *states: str) -> list["Rendition"]:
        return [rendition for rendition in self.renditions if rendition.state in states]

    def mark_failed(self, reason: str, rung: str | None = None) -> None:
        """One rung failed, or every unfinished one (no `rung`). The video is `failed` unless a rendition is
        complete; then only the rungs fail."""
        for rendition in [self.rendition(rung)] if rung else self.renditions_in(*UNFINISHED):
            rendition.state, rendition.failure_reason = FAILED, reason
        if not self.renditions_in(READY):
            self.status, self.failure_reason = FAILED, reason

    def update_progress(self) -> None:
        """Mean of the planned rungs (finished ones count 100); never goes backwards."""
        if not self.renditions:
            return
        done = [r.percent if r.state in UNFINISHED else 100 for r in self.renditions]
        self.progress = max(self.progress, sum(done) // len(done))


class Rendition(db.Model):
    """One rung of a video's ladder: planned at probe (pending), maybe playable while it encodes (growing),
    then published (ready) or failed."""

    __tablename__ = "renditions"
    __table_args__ = (
        sa.UniqueConstraint("video_id", "rung"),
        sa.CheckConstraint(f"state IN {RENDITION_STATES}", name="state_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    rung: Mapped[str] = mapped_column(sa.String(8))
    state: Mapped[str] = mapped_column(sa.String(8), default=PENDING)
    percent: Mapped[int] = mapped_column(default=0)
    width: Mapped[int | None]
    height: Mapped[int | None]
    bandwidth: Mapped[int | None]
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)

    video: Mapped[Video] = relationship(back_populates="renditions")


class TusUpload(db.Model):
    """A resumable (tus) upload in progress: its bytes so far are MEDIA_DIR/resumable/<id>."""

    __tablename__ = "tus_uploads"
    __table_args__ = (sa.CheckConstraint('"offset" BETWEEN 0 AND length', name="offset_within_length"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    length: Mapped[int] = mapped_column(sa.BigInteger)
    offset: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text)
    category: Mapped[str] = mapped_column(sa.String(100))
    filename: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    # Set once complete: the video it became.
    video_id: Mapped[int | None] = mapped_column(sa.ForeignKey("videos.id", ondelete="SET NULL"))
