"""Secrets at rest: Fernet-encrypted channel credentials; the key never enters the database.

The key comes from SOCIALCRM_SECRET_KEY, else from `<data_dir>/secret.key`, created with
mode 0600 on first run. MultiFernet lets a rotated key decrypt what the old one wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, MultiFernet

from socialcrm.config import Settings

KEY_FILE = "secret.key"


def load_or_create_key(settings: Settings) -> bytes:
    """The primary Fernet key (urlsafe base64 of 32 bytes)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().split(",")[0].strip().encode()
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return path.read_bytes().split()[0].strip()  # the first line is the primary key


def _all_keys(settings: Settings) -> list[bytes]:
    if settings.secret_key is not None:
        return [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    load_or_create_key(settings)
    # After `socialcrm rotate-key` the file holds the new key first and the old ones after it,
    # so a rotation that died half-way can still read what the old key wrote.
    return [k.strip() for k in (Path(settings.data_dir) / KEY_FILE).read_bytes().splitlines() if k.strip()]


class Vault:
    """Encrypts a dict of secret settings into one opaque string and back."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(_all_keys(settings))

    def encrypt(self, secrets: dict[str, Any]) -> str:
        if not secrets:
            return ""
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        if not token:
            return {}
        return json.loads(self._fernet.decrypt(token.encode()))
