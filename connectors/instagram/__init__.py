"""Instagram: DMs, comments and @mentions of a professional account (see README.md)."""

from .connector import InstagramConnector, InstagramSettings

__all__ = ["InstagramConnector", "InstagramSettings"]
