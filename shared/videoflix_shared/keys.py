"""RSA key pair, service credential and S3 keys: loading, and generating them when absent.

`python -m videoflix_shared.keys DIR [PUBLIC_DIR]` creates `jwt_private.pem`, `jwt_public.pem` and
`service_token` in DIR unless they exist (used by `make keys` and by the compose key-init container),
and copies the public key and the service token into PUBLIC_DIR: what every service but auth reads.

`python -m videoflix_shared.keys seaweedfs-identities FILE` writes SeaweedFS's S3 identities config for
S3_BUCKET with the key pairs of S3_* and GATEWAY_S3_* (the compose S3 mode's seaweedfs-config job).
"""
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_private_key(path: Path) -> str:
    return Path(path).read_text()


def load_public_key(path: Path) -> str:
    return Path(path).read_text()


def _write_secret(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate(directory: Path) -> list[Path]:
    """Create the key pair and the service token in `directory`; existing files are kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    private_path, public_path = directory / "jwt_private.pem", directory / "jwt_public.pem"
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_secret(private_path, pem, 0o600)
        public_path.unlink(missing_ok=True)
        created.append(private_path)
    if not public_path.exists():
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_secret(public_path, public_pem, 0o644)
        created.append(public_path)
    token_path = directory / "service_token"
    if not token_path.exists():
        _write_secret(token_path, secrets.token_urlsafe(32).encode(), 0o600)
        created.append(token_path)
    return created


S3_CREDENTIALS_FILE = "s3_credentials.json"


def s3_credentials(directory: Path) -> dict[str, dict[str, str]]:
    """The local SeaweedFS's two key pairs, generated into `directory` once: `service` (read-write, the
    catalog and the transcoders) and `gateway` (read-only, the gateway's GETs). Each {"id", "secret"}."""
    path = Path(directory) / S3_CREDENTIALS_FILE
    if not path.exists():
        Path(directory).mkdir(parents=True, exist_ok=True)
        pairs = {role: {"id": f"VF{role[:3].upper()}{secrets.token_hex(8).upper()}",
                        "secret": secrets.token_urlsafe(30)} for role in ("service", "gateway")}
        try:
            _write_secret(path, json.dumps(pairs).encode(), 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
    return json.loads(path.read_text())


def seaweedfs_identities(bucket: str, service: tuple[str, str], gateway: tuple[str, str]) -> dict:
    """SeaweedFS's S3 identities config (`weed ... -s3.config`): the service key may do everything on
    `bucket` (and create it), the gateway key only read its objects. Anonymous requests are refused."""
    def identity(name: str, key: tuple[str, str], actions: list[str]) -> dict:
        return {"name": name, "credentials": [{"accessKey": key[0], "secretKey": key[1]}],
                "actions": [f"{action}:{bucket}" for action in actions]}

    return {"identities": [identity("videoflix-services", service, ["Read", "Write", "List", "Tagging", "Admin"]),
                           identity("videoflix-gateway", gateway, ["Read"])]}


PUBLIC_FILES = {"jwt_public.pem": 0o644, "service_token": 0o600}


def publish(directory: Path, public_directory: Path) -> list[Path]:
    """Copy the public key and the service token of `directory` into `public_directory` (kept in step:
    a copy that differs is replaced). Never the private key."""
    public_directory = Path(public_directory)
    public_directory.mkdir(parents=True, exist_ok=True)
    copied = []
    for name, mode in PUBLIC_FILES.items():
        source, target = Path(directory) / name, public_directory / name
        data = source.read_bytes()
        if target.exists() and target.read_bytes() == data:
            continue
        target.unlink(missing_ok=True)
        _write_secret(target, data, mode)
        copied.append(target)
    return copied


def write_seaweedfs_identities(path: Path) -> None:
    """SeaweedFS's identities config from the settings' two key pairs (replaced: the .env may have new ones).
    World-readable (SeaweedFS may run as another user): it lives in a volume only SeaweedFS mounts."""
    from .config import Settings

    settings = Settings.from_env()
    pairs = {"S3_*": (settings.s3_access_key_id, settings.s3_secret_access_key),
             "GATEWAY_S3_*": (settings.gateway_s3_access_key_id, settings.gateway_s3_secret_access_key)}
    empty = [name for name, pair in pairs.items() if not all(pair)]
    if empty:
        sys.exit(f"set {' and '.join(empty)} (access key id and secret): SeaweedFS admits those keys only")
    identities = seaweedfs_identities(settings.s3_bucket, pairs["S3_*"], pairs["GATEWAY_S3_*"])
    Path(path).unlink(missing_ok=True)
    _write_secret(Path(path), json.dumps(identities).encode(), 0o644)


if __name__ == "__main__" and sys.argv[1:2] == ["seaweedfs-identities"]:
    write_seaweedfs_identities(Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]}")
elif __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/keys")
    for path in generate(target):
        print(f"created {path}")
    if len(sys.argv) > 2:
        for path in publish(target, Path(sys.argv[2])):
            print(f"copied {path}")
