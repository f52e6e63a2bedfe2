"""What a Telegram Message says and carries: text or caption, and its media as attachments.

Telegram sends file ids, not URLs: a file is downloaded with getFile, which this connector does
not call. Every attachment therefore has `url=None` and `name="telegram-file:<file_id>"`, so a
later download step (or an admin) can find the file; the original file name stays in `raw`.
"""

from __future__ import annotations

from typing import Any

from socialcrm.connector import Attachment, MalformedPayload
from socialcrm.payload import field_str

FILE_PREFIX = "telegram-file:"
#: Message fields holding one file object, and the attachment kind each becomes. An animation
#: message also carries a `document` copy of it (backward compatibility): that one is skipped.
FILE_FIELDS = (("animation", "video"), ("video", "video"), ("video_note", "video"),
               ("audio", "audio"), ("voice", "audio"), ("document", "file"))


def build_content(message: dict[str, Any], where: str) -> tuple[str, list[Attachment]]:
    """The text (or caption) and attachments; a sticker without text reads as its emoji."""
    text = string(message, "text", where) or string(message, "caption", where) or ""
    attachments = []
    if "photo" in message:
        attachments.append(build_photo(message["photo"], f"{where}.photo"))
    if "sticker" in message:
        sticker = field(message, "sticker", where)
        attachments.append(Attachment("sticker", name=file_ref(sticker, f"{where}.sticker")))
        text = text or string(sticker, "emoji", f"{where}.sticker") or ""
    for key, kind in FILE_FIELDS:
        if key in message and not (key == "document" and "animation" in message):
            media = field(message, key, where)
            attachments.append(Attachment(kind, mime_type=string(media, "mime_type", f"{where}.{key}"),
                                          name=file_ref(media, f"{where}.{key}")))
    return text, attachments


def build_photo(sizes: Any, where: str) -> Attachment:
    """A photo comes in several PhotoSizes; keep the largest (most pixels, the last on a tie)."""
    if not isinstance(sizes, list) or not sizes or not all(isinstance(s, dict) for s in sizes):
        raise MalformedPayload(f"{where} is not a non-empty list of PhotoSize objects")
    for size in sizes:
        integer(size, "width", where)
        integer(size, "height", where)
    largest = max(enumerate(sizes), key=lambda pair: (pair[1]["width"] * pair[1]["height"], pair[0]))[1]
    return Attachment("image", name=file_ref(largest, where))


def file_ref(media: dict[str, Any], where: str) -> str:
    return FILE_PREFIX + string(media, "file_id", where, required=True)


# -- field readers: a wrong type is malformed, a missing optional field is None ----------------

def field(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}.{key} is missing or not an object")
    return value


def integer(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if type(value) is not int:  # bool is an int too, and never an id or a date
        raise MalformedPayload(f"{where}.{key} is missing or not an integer")
    return value


def string(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """Telegram's fields are mostly optional: optional unless said otherwise."""
    return field_str(obj, key, where, required=required)
