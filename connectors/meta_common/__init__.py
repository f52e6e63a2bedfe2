"""What Messenger, the Page feed, Instagram and WhatsApp Cloud API share: one app, one signature
scheme, one verification handshake, one Graph error format. Not a connector itself."""

from connectors.meta_common.graph import GraphAPI, raise_for_graph_error
from connectors.meta_common.webhook import (
    clean_json,
    handshake,
    parse_json_object,
    verify_signature,
)

__all__ = ["GraphAPI", "clean_json", "handshake", "parse_json_object", "raise_for_graph_error", "verify_signature"]
