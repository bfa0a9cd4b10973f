"""Where media lives: one interface, two backends (docs/storage.md).

Keys are relative paths: `originals/<id>/<name>`, `hls/<id>/<rung>/index.m3u8` and `segment_NNN.ts`,
`hls/<id>/master.m3u8`, `hls/<id>/thumbnail.jpg`. An upload streams straight to its original's key.

- `LocalStorage`: files under MEDIA_DIR (`MEDIA_STORAGE=local`); every write lands aside and is renamed
  into place, so a reader sees a whole file or none.
- `S3Storage`: objects in a private bucket of any S3-compatible server (`MEDIA_STORAGE=s3`), through
  boto3 (SigV4, botocore's retries). Streams go up part by part (multipart upload): memory stays at one
  part, nothing touches the disk.

`storage_from_settings(settings)` chooses; the services never branch on the backend. Errors of the
backend (server down, refused credentials, full bucket) are raised as `StorageUnavailable`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .config import Settings

# S3's multipart minimum (all parts but the last): what an upload holds in memory. With S3's 10,000
# parts at most, one object can reach 48 GiB (MAX_UPLOAD_BYTES stays far below).
PART_BYTES = 5 * 1024 * 1024
# boto3's file transfers (the transcoders' downloads and uploads): fewer, larger requests, a few at a time.
TRANSFER_CHUNK_BYTES = 8 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
PLAYLIST_SUFFIX = ".m3u8"
TMP_PREFIX = ".tmp-"
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/MP2T", ".jpg": "image/jpeg"}


class StorageUnavailable(Exception):
    """The media storage cannot be reached or refused the request (not: the object does not exist)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # seconds since the epoch


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


def publish_order(directory: Path) -> list[Path]:
    """The files of a rung directory as they must appear: segments (and anything else) first, the
    playlists last, so a playlist never names a segment that is not there yet."""
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    return [path for path in files if path.suffix != PLAYLIST_SUFFIX] + \
        [path for path in files if path.suffix == PLAYLIST_SUFFIX]


class Storage(ABC):
    """Media objects by key. Writes are all-or-nothing for readers."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def put_bytes(self, key: str, data: bytes | bytearray, cache_control: str | None = None) -> None:
        """`cache_control`: stored with an S3 object (the gateway passes `no-cache` on to players: a
        growing playlist); on local disk the streamer decides from the file."""

    @abstractmethod
    def writer(self, key: str) -> "Writer":
        """A file-like object to write `key` in pieces; `commit()` makes it visible, `abort()` drops it."""

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        """Copy a readable stream into `key` (bounded memory); returns its size."""
        writer = self.writer(key)
        try:
            while chunk := stream.read(COPY_CHUNK):
                writer.write(chunk)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return writer.size

    @abstractmethod
    def move_in(self, path: Path, key: str) -> None:
        """Store a local file as `key` and remove the local file (a rename on the same disk)."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """The stored file itself when the backend keeps objects as files on this disk (FileNotFoundError
        if it is missing); None when they must be downloaded."""
        return None

    @contextlib.contextmanager
    def local_copy(self, key: str, directory: Path,
                   fetch: Callable[[str, Path], None] | None = None) -> Iterator[Path]:
        """A local file with the object's bytes for as long as the block runs (ffmpeg reads local
        files only): the stored file itself on local disk, else a file in `directory` that `fetch`
        (default: a download) fills; removed afterwards."""
        stored = self.local_path(key)
        if stored is not None:
            yield stored
            return
        target = Path(directory) / key  # the key in the path: `originals/<id>/` names the video in ps
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            (fetch or self.download)(key, target)
            yield target
        finally:
            target.unlink(missing_ok=True)

    @abstractmethod
    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes | None:
        """Bytes of `key` from `start` (`length` of them, or to the end); None if it does not exist."""

    def get(self, key: str) -> bytes | None:
        return self.get_range(key)

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Bytes of `key`, None when it does not exist."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix`, by key."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (end it with `/` for a folder); returns how many."""

    @abstractmethod
    def publish_directory(self, directory: Path, prefix: str) -> bool:
        """Make the files of a finished local directory (one HLS rung) visible under `prefix`
        (`hls/<id>/<rung>`) so that its playlist appears only after every segment; False when a
        playlist is already published there (nothing is changed then)."""

    @abstractmethod
    def remove_abandoned_writes(self, prefix: str, older_than_seconds: float) -> int:
        """Drop the writes under `prefix` that were neither committed nor aborted (their process died)
        and received nothing for this long; returns how many. Complete objects are never touched."""

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (nothing to do on local disk)."""


class Writer(ABC):
    size = 0

    @abstractmethod
    def write(self, data: bytes) -> int: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


# --- Local disk ---------------------------------------------------------------------------------


class LocalWriter(Writer):
    def __init__(self, target: Path, root: Path):
        # The folders under `root` this write creates (deepest first), removed again if it is aborted.
        self.created = [folder for folder in [target.parent, *target.parent.parents]
                        if folder.is_relative_to(root) and folder != root and not folder.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        descriptor, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent)
        self.partial = Path(name)
        self.file = os.fdopen(descriptor, "wb")

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return self.file.write(data)

    def commit(self) -> None:
        self.file.close()
        os.chmod(self.partial, 0o644)  # mkstemp makes it private; the gateway's nginx reads it
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        """Drop the partial file, and the folders this write made unless something else is in them."""
        self.file.close()
        self.partial.unlink(missing_ok=True)
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:
                break


class LocalStorage(Storage):
    """MEDIA_DIR/<key>."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = (self.root / key)
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise ValueError(f"not a storage key: {key!r}")
        return path

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as source:
            self.put_stream(key, source)

    def put_bytes(self, key: str, data: bytes | bytearray, cache_control: str | None = None) -> None:
        writer = self.writer(key)
        writer.write(data)
        writer.commit()

    def writer(self, key: str) -> Writer:
        return LocalWriter(self.path(key), self.root)

    def move_in(self, path: Path, key: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self.put_file(key, path)
            Path(path).unlink()

    def download(self, key: str, path: Path) -> None:
        shutil.copyfile(self.path(key), path)

    def local_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes | None:
        try:
            with open(self.path(key), "rb") as handle:
                handle.seek(start)
                return handle.read() if length is None else handle.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.is_file() else None

    def list(self, prefix: str) -> list[StoredObject]:
        base = self.path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and path.is_file() and not path.name.startswith(TMP_PREFIX):
                stat = path.stat()
                found.append(StoredObject(key, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda item: item.key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_abandoned_writes(self, prefix: str, older_than_seconds: float) -> int:
        """The hidden partial files of dead writers (and the folder a dead upload made, left empty)."""
        base = self.path(prefix.rstrip("/"))
        cutoff = time.time() - older_than_seconds
        stale = [path for path in base.rglob(f"{TMP_PREFIX}*") if path.is_file() and path.stat().st_mtime < cutoff] \
            if base.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # still holds other files
                path.parent.rmdir()
        return len(stale)

    def delete_prefix(self, prefix: str) -> int:
        count = len(self.list(prefix))
        if prefix.endswith("/"):
            shutil.rmtree(self.path(prefix.rstrip("/")), ignore_errors=True)
        else:
            for item in self.list(prefix):
                self.delete(item.key)
        return count

    def publish_directory(self, directory: Path, prefix: str) -> bool:
        """A rename of the whole directory (copied first to a hidden sibling when it is on another
        disk): the rung's folder exists only complete."""
        target = self.path(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return False
        staged = Path(directory)
        if os.stat(staged).st_dev != os.stat(target.parent).st_dev:
            staged = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent))
            shutil.copytree(directory, staged, dirs_exist_ok=True)
        staged.chmod(0o755)
        try:
            os.rename(staged, target)
        except OSError as error:
            if staged != Path(directory):
                shutil.rmtree(staged, ignore_errors=True)
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True


# --- S3 -----------------------------------------------------------------------------------------


def _s3_errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


@contextlib.contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """botocore's errors as StorageUnavailable (their text names the endpoint, never the secret)."""
    try:
        yield
    except _s3_errors() as error:
        raise StorageUnavailable(f"{what}: {error}") from error


def _missing(error) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in {
        "404", "NoSuchKey", "NotFound", "InvalidRange"}


class S3Writer(Writer):
    """A multipart upload fed by `write()`: the bytes gather in one part-sized buffer that is sent as it
    is whenever it is full (never a copy of it), so an upload in flight holds one part."""

    def __init__(self, storage: "S3Storage", key: str, part_bytes: int = PART_BYTES):
        self.storage, self.key, self.part_bytes = storage, key, part_bytes
        self.buffer = bytearray()  # part_bytes long from the first write on; `filled` of them are data
        self.filled = 0
        self.parts: list[dict] = []
        self.upload_id: str | None = None

    @property
    def client(self):
        return self.storage.client

    def write(self, data: bytes) -> int:
        if not self.buffer:
            self.buffer = bytearray(self.part_bytes)  # calloc: pages count once written
        view = memoryview(data)
        while len(view):
            taken = view[:self.part_bytes - self.filled]
            self.buffer[self.filled:self.filled + len(taken)] = taken  # same length: in place
            self.filled += len(taken)
            view = view[len(taken):]
            if self.filled == self.part_bytes:
                self._send(self.buffer)
                self.filled = 0
        self.size += len(data)
        return len(data)

    def _send(self, part: bytearray) -> None:
        """botocore sends a bytearray body as it is (a bytes body would be copied behind the headers)."""
        with _unavailable(f"uploading {self.key}"):
            if self.upload_id is None:
                self.upload_id = self.client.create_multipart_upload(
                    Bucket=self.storage.bucket, Key=self.key, ContentType=content_type(self.key))["UploadId"]
            number = len(self.parts) + 1
            answer = self.client.upload_part(Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id,
                                             PartNumber=number, Body=part)
            self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self) -> None:
        del self.buffer[self.filled:]  # the last part: what was written of it
        if self.upload_id is None:  # smaller than one part: one PUT
            self.storage.put_bytes(self.key, self.buffer)
        else:
            if self.buffer:
                self._send(self.buffer)
            with _unavailable(f"uploading {self.key}"):
                self.client.complete_multipart_upload(Bucket=self.storage.bucket, Key=self.key,
                                                      UploadId=self.upload_id, MultipartUpload={"Parts": self.parts})
        self.buffer, self.filled = bytearray(), 0

    def abort(self) -> None:
        self.buffer, self.filled = bytearray(), 0
        if self.upload_id is not None:
            with contextlib.suppress(*_s3_errors()):
                self.client.abort_multipart_upload(Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None


class S3Storage(Storage):
    """Objects in `bucket` at `endpoint_url` (None: AWS S3), path-style, SigV4."""

    def __init__(self, endpoint_url: str | None, region: str, bucket: str, access_key_id: str,
                 secret_access_key: str, attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 60):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.region = bucket, region
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region,
            aws_access_key_id=access_key_id or None, aws_secret_access_key=secret_access_key or None,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": attempts, "mode": "standard"},
                          connect_timeout=connect_timeout, read_timeout=read_timeout,
                          # checksums only where S3 requires them: SeaweedFS, Ceph and MinIO differ
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"),
        )
        # Files go up and down in TRANSFER_CHUNK_BYTES pieces, a few at a time: memory stays at a few pieces.
        self.transfer = TransferConfig(multipart_threshold=TRANSFER_CHUNK_BYTES,
                                       multipart_chunksize=TRANSFER_CHUNK_BYTES, max_concurrency=4)

    def put_file(self, key: str, path: Path) -> None:
        with _unavailable(f"uploading {key}"):
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer,
                                    ExtraArgs={"ContentType": content_type(key)})

    def put_bytes(self, key: str, data: bytes | bytearray, cache_control: str | None = None) -> None:
        extra = {"CacheControl": cache_control} if cache_control else {}
        with _unavailable(f"uploading {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type(key), **extra)

    def writer(self, key: str) -> Writer:
        return S3Writer(self, key)

    def move_in(self, path: Path, key: str) -> None:
        self.put_file(key, path)
        Path(path).unlink()

    def download(self, key: str, path: Path) -> None:
        partial = Path(path).with_name(f"{TMP_PREFIX}{Path(path).name}")
        try:
            with _unavailable(f"downloading {key}"):
                try:
                    self.client.download_file(self.bucket, key, str(partial), Config=self.transfer)
                except _s3_errors()[1] as error:
                    if _missing(error):
                        raise FileNotFoundError(key) from None
                    raise
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes | None:
        options = {}
        if start or length is not None:
            options["Range"] = f"bytes={start}-{'' if length is None else start + length - 1}"
        with _unavailable(f"reading {key}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key, **options)["Body"].read()
            except _s3_errors()[1] as error:
                if _missing(error):
                    return None
                raise

    def size(self, key: str) -> int | None:
        with _unavailable(f"reading {key}"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
            except _s3_errors()[1] as error:
                if _missing(error):
                    return None
                raise

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        with _unavailable(f"listing {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found += [StoredObject(item["Key"], item["Size"], item["LastModified"].timestamp())
                          for item in page.get("Contents", [])]
        return sorted(found, key=lambda item: item.key)

    def delete(self, key: str) -> None:
        with _unavailable(f"deleting {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        keys = [item.key for item in self.list(prefix)]
        with _unavailable(f"deleting {prefix}"):
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
        return len(keys)

    def publish_directory(self, directory: Path, prefix: str) -> bool:
        """Segments first, playlists last: the playlist's appearance is the rung's publication."""
        files = publish_order(Path(directory))
        playlists = [path for path in files if path.suffix == PLAYLIST_SUFFIX]
        if any(self.exists(f"{prefix}/{path.relative_to(directory).as_posix()}") for path in playlists):
            return False
        for path in files:
            self.put_file(f"{prefix}/{path.relative_to(directory).as_posix()}", path)
        return True

    def remove_abandoned_writes(self, prefix: str, older_than_seconds: float) -> int:
        """Multipart uploads under `prefix` never completed nor aborted, whose newest part (or start, with
        no part yet) is older than this: a live upload sends a part every few seconds."""
        cutoff, removed = time.time() - older_than_seconds, 0
        with _unavailable(f"listing uploads under {prefix}"):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                    Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() >= cutoff:
                        continue
                    pages = self.client.get_paginator("list_parts").paginate(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    parts = [part for answer in pages for part in answer.get("Parts", [])]
                    if max((part["LastModified"].timestamp() for part in parts), default=0) < cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
                        removed += 1
        return removed

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        with _unavailable(f"creating bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
                try:
                    location = {} if self.region == "us-east-1" else {
                        "CreateBucketConfiguration": {"LocationConstraint": self.region}}
                    self.client.create_bucket(Bucket=self.bucket, **location)
                except ClientError as created:
                    if created.response.get("Error", {}).get("Code") not in {
                            "BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise


def storage_from_settings(settings: Settings) -> Storage:
    if settings.media_storage == "s3":
        return S3Storage(settings.s3_endpoint_url, settings.s3_region, settings.s3_bucket,
                         settings.s3_access_key_id, settings.s3_secret_access_key)
    return LocalStorage(settings.media_dir)


def seaweedfs_command(weed: str, directory: Path, s3_port: int, identities: Path) -> list[str]:
    """`weed server` with a master, a volume server, a filer and the S3 API, all on 127.0.0.1 at ports
    s3_port to s3_port + 7 (gRPC ports included), data in `directory`, the S3 keys of `identities`
    (keys.seaweedfs_identities): SigV4 checked, anonymous requests refused."""
    ports = {"master.port": 1, "master.port.grpc": 2, "volume.port": 3, "volume.port.grpc": 4,
             "filer.port": 5, "filer.port.grpc": 6, "s3.port.grpc": 7}
    return [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={directory}",
            *(f"-{flag}={s3_port + offset}" for flag, offset in ports.items()),
            "-filer", "-s3", f"-s3.port={s3_port}", f"-s3.config={identities}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024", "-volume.max=0"]
