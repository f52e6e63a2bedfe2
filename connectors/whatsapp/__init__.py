"""WhatsApp Cloud API: customer messages, media, reactions and delivery statuses (see README.md)."""

from .connector import WhatsAppConnector, WhatsAppSettings

__all__ = ["WhatsAppConnector", "WhatsAppSettings"]
