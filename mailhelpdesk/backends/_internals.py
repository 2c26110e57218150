"""Every use of a private part of IMAPClient, imaplib, smtplib or google-api-python-client, in one place. Their
public APIs cannot: write an IMAP APPEND and do something before its answer is read (our sent copy and the SMTP
commit back to back), send UID STORE with UNCHANGEDSINCE (RFC 7162) and read the MODIFIED code, cut a connection
from another thread, hand an SMTP message over without its final dot, or point the Gmail API client at another
server (a test server) with the discovery document it ships.

Checked against IMAPClient 3.0.0 and 4.1.0, google-api-python-client 2.202 (pyproject pins IMAPClient>=3.0,<4.2
and google-api-python-client<3: move a bound only after reading these functions against the new version), and
against imaplib and smtplib of CPython 3.11, 3.12 and 3.13. `missing()` lists what an installed version no longer
has (a test asserts it lists nothing).
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
from datetime import datetime
from typing import Any, Callable

import imapclient
from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.response_parser import parse_fetch_response

# what the functions below read, by module
_NEEDED = (
    ("imapclient", "IMAPClient._normalise_folder"),
    ("imaplib", "IMAP4._new_tag"),
    ("imaplib", "IMAP4._command_complete"),
    ("imaplib", "IMAP4._simple_command"),
    ("smtplib", "_quote_periods"),
    ("googleapiclient.discovery_cache", "get_static_doc"),
)


def missing() -> list[str]:
    """The private names this module needs that the installed libraries lack (an empty list when all is well)."""
    from importlib import import_module

    lacking = []
    for module, name in _NEEDED:
        found: Any = import_module(module)
        for part in name.split("."):
            found = getattr(found, part, None)
        if found is None:
            lacking.append(f"{module}.{name}")
    return lacking


# --- IMAP (IMAPClient keeps the imaplib connection in `_imap`) --------------------------------------------------


def imap_socket(client: Any) -> socket.socket | None:
    """The socket under an IMAPClient (None when not connected), for shutting it from another thread."""
    return getattr(getattr(client, "_imap", None), "sock", None)


def append_then(client: imapclient.IMAPClient, folder: str, flags: list[bytes], when: datetime, data: bytes,
                then: Callable[[], None]) -> tuple[str, bytes]:
    """APPEND with a LITERAL+ literal (RFC 7888: the server needs no continuation), written in one go; `then()` runs
    before the server's answer is read. The server's verdict ("OK", "NO" ...) and the words of its tagged and
    APPENDUID responses."""
    imap = client._imap
    tag = imap._new_tag()
    name = client._normalise_folder(folder)
    head = b" ".join([
        tag, b"APPEND", name if isinstance(name, bytes) else name.encode(),
        b"(" + b" ".join(flags) + b")",
        b'"' + datetime_to_INTERNALDATE(when).encode() + b'"',
    ])
    imap.send(head + b" {%d+}\r\n" % len(data) + data + b"\r\n")
    then()
    typ, response = imap._command_complete("APPEND", tag)
    text = b" ".join(r for r in response if isinstance(r, bytes))
    text += b" " + b" ".join(r for r in imap.untagged_responses.pop("APPENDUID", []) if isinstance(r, bytes))
    return typ, text


def store_unless_changed(client: imapclient.IMAPClient, uids: list[int], version: int, op: str,
                         flags: list[str]) -> tuple[str, Any, bytes, list[dict[bytes, Any]]]:
    """UID STORE uids (UNCHANGEDSINCE version) op (flags), not .SILENT: the server's verdict and words, the UID set
    of its MODIFIED response code (the messages it refused: changed since `version`), and its FETCH responses
    parsed (each with the UID and the new MODSEQ of a message it changed)."""
    imap = client._imap
    imap.untagged_responses.pop("MODIFIED", None)
    imap.untagged_responses.pop("FETCH", None)
    typ, data = imap._simple_command("UID", "STORE", ",".join(map(str, uids)), f"(UNCHANGEDSINCE {version})", op,
                                     "(" + " ".join(flags) + ")")
    modified = b" ".join(m for m in imap.untagged_responses.pop("MODIFIED", []) if isinstance(m, bytes))
    answers = [a for a in imap.untagged_responses.pop("FETCH", []) if isinstance(a, bytes)]
    return typ, data, modified, list(parse_fetch_response(answers, True, False).values()) if answers else []


# --- SMTP -------------------------------------------------------------------------------------------------------


def smtp_unconnected(use_ssl: bool, host: str, timeout: float, context: ssl.SSLContext | None) -> smtplib.SMTP:
    """An SMTP object not yet connected (so another thread can cut it while it waits for the greeting), that will
    check the TLS certificate against `host`, as the constructor would have had it connected at once."""
    if use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(timeout=timeout)
    smtp._host = host
    return smtp


def dot_stuffed(data: bytes) -> bytes:
    """A message's bytes as DATA carries them (a leading "." doubled), as smtplib's own data() writes them."""
    return smtplib._quote_periods(data)


# --- the Gmail API client ----------------------------------------------------------------------------------------


def gmail_discovery_document() -> dict[str, Any]:
    """The Gmail API's discovery document as the client library ships it (what `build(static_discovery=True)`
    reads), for `build_from_document` with another rootUrl."""
    from googleapiclient import discovery_cache

    text = discovery_cache.get_static_doc("gmail", "v1")
    if text is None:
        raise RuntimeError("google-api-python-client ships no gmail v1 discovery document")
    return json.loads(text)
