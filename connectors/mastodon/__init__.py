"""Mastodon: any Mastodon-compatible instance, polled for notifications (see README.md)."""

from .connector import MastodonConnector, MastodonSettings

__all__ = ["MastodonConnector", "MastodonSettings"]
