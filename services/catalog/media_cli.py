"""`flask --app services.catalog.app media ...`: move a local library into the media storage, find orphans.

    media import-local [--source DIR]   copy MEDIA_DIR's originals/ and hls/ into the configured storage
    media orphans [--delete]            objects without a video row (deleted with --delete), and videos
                                        whose original is gone (reported only)
    media create-bucket [--wait SECONDS] the bucket, created if missing (the compose S3 mode's one-shot job)

`import-local` is what a user who started with MEDIA_STORAGE=local runs once after switching to s3: an
object already stored with the same size is skipped, so it is idempotent and, interrupted, resumes where
it stopped. Per video, segments go before their playlist and the master last (as the transcoder publishes).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup
from videoflix_shared.storage import PLAYLIST_SUFFIX, LocalStorage, StorageUnavailable

from .models import Video, db
from .storage import HLS_DIR, ORIGINALS_DIR, storage

media_command = AppGroup("media", help="Move a local media library into the storage; find orphaned media.")
VIDEO_KEY = re.compile(rf"^({ORIGINALS_DIR}|{HLS_DIR})/([0-9]+)/")


def import_order(key: str) -> tuple:
    """Originals, then every segment, then rung playlists, then master playlists and thumbnails last."""
    name = key.rsplit("/", 1)[1]
    last = name in {"master.m3u8", "thumbnail.jpg"}
    return (VIDEO_KEY.match(key).group(2) if VIDEO_KEY.match(key) else "", last, name.endswith(PLAYLIST_SUFFIX), key)


@media_command.command("import-local")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The local library (default: MEDIA_DIR).")
def import_local(source: Path | None) -> None:
    """Copy every original and HLS file of a local library into the storage (skips what is there)."""
    source = LocalStorage(source or current_app.config["SETTINGS"].media_dir)
    target = storage()
    if isinstance(target, LocalStorage) and target.root.resolve() == source.root.resolve():
        raise click.ClickException("The storage is this local library already: set MEDIA_STORAGE=s3 first.")
    target.ensure_bucket()
    files = sorted((item for top in (ORIGINALS_DIR, HLS_DIR) for item in source.list(f"{top}/")),
                   key=lambda item: import_order(item.key))
    stored = {item.key: item.size for top in (ORIGINALS_DIR, HLS_DIR) for item in target.list(f"{top}/")}
    total = sum(item.size for item in files)
    copied = skipped = done = 0
    for number, item in enumerate(files, 1):
        if stored.get(item.key) == item.size:
            skipped += 1
        else:
            target.put_file(item.key, source.path(item.key))
            copied += 1
        done += item.size
        if number % 100 == 0 or number == len(files):
            click.echo(f"{number}/{len(files)} files, {done / 2**20:.1f}/{total / 2**20:.1f} MiB "
                       f"({copied} copied, {skipped} already there)")
    click.echo(f"done: {copied} copied, {skipped} already there; the local files are kept (delete them "
               "once the stack serves every video from the storage)")


@media_command.command("orphans")
@click.option("--delete", is_flag=True, help="Delete the objects that belong to no video.")
def orphans(delete: bool) -> None:
    """Objects under originals/<id>/ and hls/<id>/ whose video row is gone; videos whose original is gone."""
    known = set(db.session.scalars(sa.select(Video.id)))
    found: dict[str, int] = {}
    for top in (ORIGINALS_DIR, HLS_DIR):
        for item in storage().list(f"{top}/"):
            match = VIDEO_KEY.match(item.key)
            if match and int(match.group(2)) not in known:
                found.setdefault(f"{top}/{match.group(2)}/", 0)
                found[f"{top}/{match.group(2)}/"] += 1
    for prefix, count in sorted(found.items()):
        click.echo(f"orphan {prefix} ({count} objects){': deleted' if delete else ''}")
        if delete:
            storage().delete_prefix(prefix)
    missing = [video for video in db.session.scalars(sa.select(Video).order_by(Video.id))
               if not video.original_path or not storage().exists(video.original_path)]
    for video in missing:
        click.echo(f"video {video.id} ({video.status}): its original {video.original_path or '(none)'} is gone")
    click.echo(f"{len(found)} orphaned prefixes{' deleted' if delete and found else ''}, "
               f"{len(missing)} videos without their original")


@media_command.command("create-bucket")
@click.option("--wait", type=click.IntRange(min=0), default=60, show_default=True,
              help="Seconds to keep trying while the S3 endpoint does not answer yet.")
def create_bucket(wait: int) -> None:
    """Create the storage's bucket if it is missing (idempotent; nothing to do on local disk)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            storage().ensure_bucket()
            break
        except StorageUnavailable as error:
            if time.monotonic() >= deadline:
                raise click.ClickException(str(error)) from error
            time.sleep(1)
    click.echo("the bucket is there" if current_app.config["SETTINGS"].media_storage == "s3"
               else "MEDIA_STORAGE=local: no bucket needed")
