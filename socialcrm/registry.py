"""Connector discovery through entry points: built-ins and third-party packages alike."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points

from socialcrm.connector import Connector

GROUP = "socialcrm.connectors"
log = logging.getLogger(__name__)


class Registry:
    """The connectors this process knows, by key; tests build one explicitly."""

    def __init__(self, classes: Iterable[type[Connector]] = ()) -> None:
        self._by_key: dict[str, type[Connector]] = {}
        self.broken: dict[str, str] = {}
        for cls in classes:
            self.add(cls)

    def add(self, cls: type[Connector]) -> None:
        if cls.key in self._by_key and self._by_key[cls.key] is not cls:
            raise ValueError(f"two connectors claim the key {cls.key!r}")
        self._by_key[cls.key] = cls

    def get(self, key: str) -> type[Connector]:
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no connector {key!r}; known: {', '.join(sorted(self._by_key)) or 'none'}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def keys(self) -> list[str]:
        return sorted(self._by_key)

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Load every installed connector; the entry-point name must equal the class key.

        A connector that fails to load is left out with an error in the log: one broken plugin
        must not take the inbox down for every other channel. `broken` keeps the reasons."""
        registry = cls()
        for ep in entry_points(group=GROUP):
            try:
                connector = ep.load()
                if getattr(connector, "key", None) != ep.name:
                    raise ValueError(f"it loads a connector keyed {getattr(connector, 'key', None)!r}")
                registry.add(connector)
            except Exception as exc:
                log.error("connector %r not loaded: %s: %s", ep.name, type(exc).__name__, exc)
                registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
        return registry
