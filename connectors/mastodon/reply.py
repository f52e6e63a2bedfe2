"""How a reply is addressed on Mastodon: its visibility and the customer's @mention (pure)."""

from __future__ import annotations

import re
from typing import Any


def reply_visibility(customer_visibility: str | None, public: bool) -> str:
    """Never more visible than the customer's own post.

    A public or unlisted post is answered `unlisted` ("quiet public": anyone can read it in the
    thread, but it is not pushed to public timelines); followers-only is answered followers-only,
    as Mastodon's own composer does; a private mention is answered `direct`.
    """
    if customer_visibility in ("private", "direct"):
        return customer_visibility
    return "unlisted" if public else "direct"


def with_mention(text: str, acct: str) -> str:
    """Prefix "@acct " unless the full acct is already mentioned.

    Mastodon notifies, and shows a direct or followers-only post to, only the accounts mentioned
    in its text; a reply that does not mention the customer never reaches them. `@user` alone
    would mean a user of *our* instance, so a remote customer needs `@user@domain`.
    """
    pattern = rf"(?<![\w@/]){re.escape('@' + acct)}(?![\w@-]|\.\w)"
    return text if re.search(pattern, text, re.IGNORECASE) else f"@{acct} {text}"


def customer_acct(status: dict[str, Any] | None) -> str | None:
    """`account.acct` of the status answered: `user` on our instance, `user@domain` elsewhere."""
    account = status.get("account") if isinstance(status, dict) else None
    acct = account.get("acct") if isinstance(account, dict) else None
    return acct if isinstance(acct, str) and acct and not any(c.isspace() for c in acct) else None


def reply_form(text: str, visibility: str, in_reply_to_id: str | None) -> dict[str, str]:
    """The documented form parameters of POST /api/v1/statuses."""
    form = {"status": text, "visibility": visibility}
    if in_reply_to_id:
        form["in_reply_to_id"] = in_reply_to_id
    return form
