"""`socialcrm rotate-key`: re-encrypt every channel's secrets under a fresh Fernet key.

Order matters so that a crash at any point leaves every secret readable:
1. the new key is made known first (written first in the key file, the old keys kept after
   it; or, for SOCIALCRM_SECRET_KEY, printed before anything changes),
2. then all channels are re-encrypted with MultiFernet([new, *old]).rotate in one transaction.
A server still running with the old keys cannot read the rotated secrets: restart it after.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import models
from socialcrm.config import Settings
from socialcrm.db import make_engine
from socialcrm.vault import KEY_FILE

channel_t = models.Channel.__table__


@dataclass(frozen=True)
class Rotation:
    new_key: str
    from_env: bool          # True: the operator must put new_key first in SOCIALCRM_SECRET_KEY
    channels: int           # how many channels had secrets re-encrypted
    key_file: Path | None


def key_file_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE


def read_key_file(path: Path) -> list[bytes]:
    """All keys in the file, newest first, one a line (blank lines ignored)."""
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def current_keys(settings: Settings) -> list[bytes]:
    """The keys secrets may be encrypted with today, primary first."""
    if settings.secret_key is not None:
        return [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    path = key_file_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"no key file at {path} and SOCIALCRM_SECRET_KEY is not set: nothing to rotate")
    return read_key_file(path)


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Atomically replace the key file (mode 0600): a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n".join(keys) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


async def reencrypt_channels(engine: AsyncEngine, fernet: MultiFernet) -> int:
    """Rotate every channel's secrets to `fernet`'s first key, all or none."""
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(channel_t.c.id, channel_t.c.secrets_encrypted)
                                   .where(channel_t.c.secrets_encrypted != ""))).all()
        for row in rows:
            rotated = fernet.rotate(row.secrets_encrypted.encode()).decode()
            await conn.execute(channel_t.update().where(channel_t.c.id == row.id)
                               .values(secrets_encrypted=rotated))
    return len(rows)


async def rotate_key(settings: Settings, engine: AsyncEngine, announce_env_key: Callable[[str], None] | None = None) -> Rotation:
    """Make a new key primary and re-encrypt under it.

    `announce_env_key(new_key)` is called before the database changes when the keys come from
    SOCIALCRM_SECRET_KEY, so the operator has the key even if the re-encryption then fails."""
    old = current_keys(settings)
    new = Fernet.generate_key()
    fernet = MultiFernet([Fernet(k) for k in (new, *old)])
    path: Path | None = None
    if settings.secret_key is None:
        path = key_file_path(settings)
        write_key_file(path, [new, *old])
    elif announce_env_key is not None:
        announce_env_key(new.decode())
    count = await reencrypt_channels(engine, fernet)
    return Rotation(new.decode(), settings.secret_key is not None, count, path)


async def rotate_from_settings(settings: Settings, announce_env_key: Callable[[str], None]) -> Rotation:
    """What `socialcrm rotate-key` runs, with its own engine."""
    engine = make_engine(settings.database_url)
    try:
        return await rotate_key(settings, engine, announce_env_key)
    finally:
        await engine.dispose()
