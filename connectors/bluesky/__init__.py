"""Bluesky (AT Protocol): notifications polled with an app password, replies in the thread (see README.md)."""

from .connector import BlueskyConnector, BlueskySettings

__all__ = ["BlueskyConnector", "BlueskySettings"]
