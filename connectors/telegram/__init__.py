"""Telegram Bot API connector: webhook or getUpdates in, sendMessage out (see README.md)."""

from .connector import TelegramConnector, TelegramSettings

__all__ = ["TelegramConnector", "TelegramSettings"]
