"""The login session: app password in, access and refresh JWTs kept in memory, renewed when refused.

Only `SessionKeeper` sees the tokens. They never go into exceptions, log lines or reprs: the
`Session` dataclass leaves them out of its repr, and error messages name only XRPC error codes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from socialcrm.errors import AuthFailed, PermanentError, TransientError

from . import api

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)


def build_session(answer: Any) -> Session:
    """createSession/refreshSession output `{accessJwt, refreshJwt, handle, did, ...}`."""
    keys = ("accessJwt", "refreshJwt", "handle", "did")
    if not isinstance(answer, dict) or not all(isinstance(answer.get(k), str) and answer[k] for k in keys):
        raise TransientError(f"{api.PLATFORM} answered the login without the session fields")
    return Session(answer["did"], answer["handle"], answer["accessJwt"], answer["refreshJwt"])


class SessionKeeper:
    """Logs in with the app password, refreshes on ExpiredToken and retries a refused call once."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, identifier: str, password: SecretStr,
                 clock: Callable[[], datetime]) -> None:
        self._http, self._base_url, self._identifier = http, base_url, identifier
        self._password, self._clock = password, clock
        self._session: Session | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SessionKeeper({self._identifier!r}, logged_in={self._session is not None})"

    async def current(self) -> Session:
        """The session, logging in first if there is none yet."""
        async with self._lock:
            if self._session is None:
                self._session = await self._create()
            return self._session

    async def login(self) -> Session:
        """A fresh session, whatever we held before (the connector's check())."""
        async with self._lock:
            self._session = await self._create()
            return self._session

    async def call(self, method: str, nsid: str, **kwargs: Any) -> Any:
        """An authenticated call; a refused token is renewed and the call retried exactly once."""
        session = await self.current()
        try:
            return await self._send(session.access_jwt, method, nsid, **kwargs)
        except api.TokenRejected as exc:
            session = await self._renew(session, expired=exc.expired)
        try:
            return await self._send(session.access_jwt, method, nsid, **kwargs)
        except api.TokenRejected as exc:
            raise AuthFailed(f"{api.PLATFORM} refused a fresh session for {nsid} ({exc.code})", code=exc.code) from exc

    async def _renew(self, stale: Session, *, expired: bool) -> Session:
        async with self._lock:
            if self._session is not None and self._session is not stale:
                return self._session  # another call renewed it while we waited
            if expired:
                try:
                    self._session = build_session(await self._send(stale.refresh_jwt, "POST", api.REFRESH_SESSION))
                    return self._session
                except (api.TokenRejected, PermanentError) as exc:
                    log.info("%s session refresh refused (%s); logging in again", api.PLATFORM, exc.code)
            self._session = None  # a transient failure above keeps the old one, to refresh next time
            self._session = await self._create()
            return self._session

    async def _create(self) -> Session:
        body = {"identifier": self._identifier, "password": self._password.get_secret_value()}
        try:
            answer = await self._send(None, "POST", api.CREATE_SESSION, json=body)
        except (api.TokenRejected, PermanentError) as exc:
            raise AuthFailed(f"{api.PLATFORM} refused the login for {self._identifier} ({exc.code}): "
                             "check the identifier and the app password", code=exc.code) from exc
        session = build_session(answer)
        log.info("%s session created for %s", api.PLATFORM, session.did)
        return session

    async def _send(self, token: str | None, method: str, nsid: str, **kwargs: Any) -> Any:
        return await api.call(self._http, method, self._base_url, nsid, now=self._clock(), token=token, **kwargs)
