"""RSA key pair and service credential: loading, and generating them when absent.

`python -m videoflix_shared.keys DIR` creates `jwt_private.pem`, `jwt_public.pem` and `service_token`
in DIR unless they exist (used by `make keys` and by the compose key-init container).
"""
from __future__ import annotations

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


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/keys")
    for path in generate(target):
        print(f"created {path}")
