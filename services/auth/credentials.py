"""Password hashing (argon2id) and the password policy."""
from __future__ import annotations

import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 128
# The passwords of at least 8 characters that lead every leaked-password list.
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password12", "password123", "passw0rd", "p@ssw0rd", "p@ssword",
    "12345678", "123456789", "1234567890", "qwertyuiop", "qwerty123", "qwerty12", "1q2w3e4r",
    "1q2w3e4r5t", "iloveyou", "sunshine", "princess", "football", "baseball", "welcome1",
    "abcd1234", "abc12345", "aa123456", "11111111", "00000000", "letmein1", "trustno1",
    "superman", "starwars", "whatever", "changeme", "videoflix", "administrator",
})

hasher = PasswordHasher()


def _normalised(password: str) -> str:
    # The same passphrase typed on different keyboards/OSes can arrive in different Unicode forms.
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return hasher.hash(_normalised(password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not a real password, only here to spend the same time")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash (unknown user) check a dummy one so both answers take as long."""
    try:
        hasher.verify(password_hash or _dummy_hash(), _normalised(password))
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return hasher.check_needs_rehash(password_hash)


def password_problems(password: str, email: str) -> list[str]:
    """Why `password` is too weak for the account `email` (empty list: acceptable).

    Every rule applies to the NFKC form, the one that is hashed: 8 code points that normalise to 4
    characters are a 4-character password.
    """
    problems = []
    password = _normalised(password)
    lowered = password.casefold()
    local_part = email.split("@", 1)[0].casefold()
    if len(password) < MIN_LENGTH:
        problems.append(f"This password is too short. It must contain at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"This password is too long. It may contain at most {MAX_LENGTH} characters.")
    if password.isdigit():
        problems.append("This password is entirely numeric.")
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        problems.append("This password is too common or too simple.")
    if lowered == email.casefold() or (len(local_part) >= 4 and local_part in lowered):
        problems.append("The password is too similar to the email address.")
    return problems
