"""X (Twitter): Account Activity webhooks, mentions polling, public replies and DMs (see README.md)."""

from .connector import XConnector, XSettings

__all__ = ["XConnector", "XSettings"]
