"""Settings shared by every service, read from environment variables.

Every variable is documented in `.env.template`; the defaults here make the local stack work with no
`.env` at all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


MEDIA_STORAGES = ("local", "s3")


def _list(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    keys_dir: Path
    media_dir: Path
    auth_database_url: str
    catalog_database_url: str
    redis_url: str
    smtp_host: str
    smtp_port: int
    mail_from: str
    frontend_base_url: str
    public_base_url: str
    cors_origins: list[str]
    access_token_minutes: int
    refresh_token_days: int
    activation_token_hours: int
    reset_token_hours: int
    cookie_secure: bool
    max_upload_bytes: int
    upload_quota_bytes: int
    upload_expiry_hours: int
    service_token_file: Path
    catalog_url: str
    transcoder_workers: int
    max_source_seconds: int
    max_source_pixels: int
    max_source_fps: int
    max_source_frames: int
    transcode_job_timeout_seconds: int
    ffmpeg_memory_mb: int
    ffmpeg_cpu_seconds: int
    log_level: str
    metrics_multiprocess_dir: str
    media_storage: str
    s3_endpoint_url: str
    s3_region: str
    s3_bucket: str
    s3_access_key_id: str
    s3_secret_access_key: str
    gateway_s3_access_key_id: str
    gateway_s3_secret_access_key: str
    transcoder_scratch_dir: Path
    transcoder_originals_cache_mb: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get = env.get
        var_dir = Path(get("VAR_DIR", REPO_ROOT / "var")).resolve()
        keys_dir = Path(get("KEYS_DIR", var_dir / "keys"))
        pg = "postgresql://postgres@127.0.0.1:5432"
        return cls(
            var_dir=var_dir,
            keys_dir=keys_dir,
            media_dir=Path(get("MEDIA_DIR", var_dir / "media")),
            auth_database_url=get("AUTH_DATABASE_URL", f"{pg}/videoflix_auth"),
            catalog_database_url=get("CATALOG_DATABASE_URL", f"{pg}/videoflix_catalog"),
            redis_url=get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            smtp_host=get("SMTP_HOST", "127.0.0.1"),
            smtp_port=int(get("SMTP_PORT", "1025")),
            mail_from=get("MAIL_FROM", "Videoflix <noreply@videoflix.local>"),
            frontend_base_url=get("FRONTEND_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            public_base_url=get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            cors_origins=_list(get(
                "CORS_ORIGINS",
                "http://127.0.0.1:5500 http://localhost:5500 http://127.0.0.1:8000 http://localhost:8000",
            )),
            access_token_minutes=int(get("ACCESS_TOKEN_MINUTES", "30")),
            refresh_token_days=int(get("REFRESH_TOKEN_DAYS", "7")),
            activation_token_hours=int(get("ACTIVATION_TOKEN_HOURS", "24")),
            reset_token_hours=int(get("RESET_TOKEN_HOURS", "1")),
            cookie_secure=_bool(get("COOKIE_SECURE", "false")),
            max_upload_bytes=int(get("MAX_UPLOAD_BYTES", str(2 * 1024**3))),
            upload_quota_bytes=int(get("UPLOAD_QUOTA_BYTES", str(4 * 1024**3))),
            upload_expiry_hours=int(get("UPLOAD_EXPIRY_HOURS", "24")),
            service_token_file=Path(get("SERVICE_TOKEN_FILE", keys_dir / "service_token")),
            catalog_url=get("CATALOG_URL", "http://127.0.0.1:5004").rstrip("/"),
            transcoder_workers=int(get("TRANSCODER_WORKERS", "2")),
            max_source_seconds=int(get("MAX_SOURCE_SECONDS", str(3 * 3600))),
            max_source_pixels=int(get("MAX_SOURCE_PIXELS", str(4096 * 2160))),
            max_source_fps=int(get("MAX_SOURCE_FPS", "240")),
            max_source_frames=int(get("MAX_SOURCE_FRAMES", str(3 * 3600 * 60))),
            transcode_job_timeout_seconds=int(get("TRANSCODE_JOB_TIMEOUT_SECONDS", str(8 * 3600))),
            ffmpeg_memory_mb=int(get("FFMPEG_MEMORY_MB", "4096")),
            ffmpeg_cpu_seconds=int(get("FFMPEG_CPU_SECONDS", str(16 * 3600))),
            log_level=get("LOG_LEVEL", "INFO").upper(),
            metrics_multiprocess_dir=get("PROMETHEUS_MULTIPROC_DIR", ""),
            media_storage=_choice(get("MEDIA_STORAGE", "") or "local", "MEDIA_STORAGE", MEDIA_STORAGES),
            s3_endpoint_url=get("S3_ENDPOINT_URL", "").rstrip("/"),
            s3_region=get("S3_REGION", "") or "us-east-1",
            s3_bucket=get("S3_BUCKET", "") or "videoflix",
            s3_access_key_id=get("S3_ACCESS_KEY_ID", ""),
            s3_secret_access_key=get("S3_SECRET_ACCESS_KEY", ""),
            gateway_s3_access_key_id=get("GATEWAY_S3_ACCESS_KEY_ID", ""),
            gateway_s3_secret_access_key=get("GATEWAY_S3_SECRET_ACCESS_KEY", ""),
            transcoder_scratch_dir=Path(get("TRANSCODER_SCRATCH_DIR", "") or var_dir / "scratch"),
            transcoder_originals_cache_mb=int(get("TRANSCODER_ORIGINALS_CACHE_MB", "10240")),
        )

    @property
    def private_key_file(self) -> Path:
        return self.keys_dir / "jwt_private.pem"

    @property
    def public_key_file(self) -> Path:
        return self.keys_dir / "jwt_public.pem"

    def service_token(self) -> str:
        return self.service_token_file.read_text().strip()

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:  # never the S3 secrets in a log line or a traceback
        hidden = {"s3_secret_access_key", "gateway_s3_secret_access_key"}
        shown = (f"{f.name}={'***' if f.name in hidden and getattr(self, f.name) else repr(getattr(self, f.name))}"
                 for f in fields(self))
        return f"Settings({', '.join(shown)})"



def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines of a .env file (comments and blank lines skipped, quotes stripped); {} if absent."""
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    return values


def layered_settings(defaults: Mapping[str, str], dotenv: Mapping[str, str],
                     explicit: Mapping[str, str]) -> dict[str, str]:
    """The one precedence rule of the local stack: explicit settings (the environment, `make up
    WORKERS=4`) win over `.env`, and `.env` over the defaults."""
    return {**defaults, **dotenv, **explicit}
