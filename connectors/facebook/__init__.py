"""Facebook Page: Messenger and the Page feed in one channel (see README.md)."""

from .connector import FacebookConnector, FacebookSettings

__all__ = ["FacebookConnector", "FacebookSettings"]
