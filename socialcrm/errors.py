"""The connector error tree, mapped at the boundary between socialcrm and a platform.

    ConnectorError
    ├── WebhookError                    a delivery we will not ingest
    │   ├── InvalidSignature            401/403: not from the platform; logged without the body
    │   ├── MalformedPayload            400: cannot be parsed; nothing stored
    │   └── UnsupportedEvent            200: understood, deliberately not handled (no retry)
    └── SendError                       a platform call that did not succeed
        ├── RateLimited(retry_after)    wait at least `retry_after` seconds, then retry
        ├── AuthFailed                  the channel needs re-authorisation: stop, tell the admin
        ├── TransientError              retry with backoff (5xx, timeouts, resets)
        └── PermanentError              will never succeed; shown to the agent in plain words

Connectors raise these and nothing else; `platform_errors()` turns httpx transport
failures into the same tree so that the outbox and the poller see one vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx


class ConnectorError(Exception):
    """Base of everything a connector may raise."""


class WebhookError(ConnectorError):
    """A webhook delivery that will not become events."""


class InvalidSignature(WebhookError):
    """The delivery is not signed by the platform (or the shared secret is wrong)."""


class MalformedPayload(WebhookError):
    """The body is not what the platform documents; the platform should not resend it."""


class UnsupportedEvent(WebhookError):
    """A well-formed event we deliberately do not handle; answered 200 so it is not retried."""


class SendError(ConnectorError):
    """A call to the platform failed; `code` is the platform's own error code, if any."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RateLimited(SendError):
    """The platform asked us to slow down; never retry before `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, code: str | int | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(0.0, float(retry_after))


class AuthFailed(SendError):
    """The token was rejected: retrying cannot help until an admin re-authorises the channel."""


class TransientError(SendError):
    """Worth retrying with backoff: 5xx, timeouts, dropped connections."""


class PermanentError(SendError):
    """Will never succeed as sent (window closed, user blocked us, text too long)."""


@contextlib.contextmanager
def platform_errors(platform: str) -> Iterator[None]:
    """Map httpx transport failures to `TransientError`, chaining the original."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransientError(f"{platform} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"could not reach {platform}: {type(exc).__name__}") from exc
