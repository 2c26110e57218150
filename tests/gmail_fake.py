"""A local fake of the Gmail API (v1) for tests, driven through the real google-api-python-client.

It runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread and keeps one mailbox in
memory. It serves what the Gmail adapter (mailhelpdesk/backends/gmail.py) calls: users.getProfile, users.watch,
labels.list and .create, messages.list, .get (formats raw and minimal), .modify, .batchModify, .send and .insert,
history.list, batch requests and the OAuth token endpoint. Each follows the API's documented behaviour closely
enough that the adapter should behave the same against Gmail; what is guessed rather than documented is marked
"(guess)" below. Anything else (another method, format=full or metadata, fields=, /upload/ URLs) answers
501 Not Implemented, never a made-up answer.

Usage::

    with GmailFake("help@example.com") as gm:
        msg_id = gm.add_message(raw_bytes)                       # seeding API: plain Python
        service = build_service(gm)                              # googleapiclient Resource, batch works too
        service.users().messages().get(userId="me", id=msg_id, format="raw").execute()

URL paths the client really uses (checked with google-api-python-client 2.202):
``/gmail/v1/users/{userId}/...`` for every method (``userId`` url-quoted: ``help%40example.com``) and
``POST /batch`` for batches (rootUrl + the discovery document's ``batchPath``, which is ``"batch"`` in the
packaged document; ``/batch/gmail/v1`` is accepted too). The client adds ``?alt=json`` to every call.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import email
import email.policy
import email.utils
import html
import json
import random
import re
import threading
import time
import urllib.parse
from collections import Counter
from email.header import decode_header, make_header
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from zoneinfo import ZoneInfo

__all__ = ["GmailFake", "build_service", "discovery_document", "QUOTA_UNITS", "LABEL_PALETTE"]

# --------------------------------------------------------------------------------------------------
# Static facts
# --------------------------------------------------------------------------------------------------

#: Quota units per method (developers.google.com/workspace/gmail/api/reference/quota).
QUOTA_UNITS: dict[str, int] = {
    "users.getProfile": 1,
    "users.watch": 100,
    "users.labels.list": 1,
    "users.labels.create": 5,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.modify": 5,
    "users.messages.batchModify": 50,
    "users.messages.send": 100,
    "users.messages.insert": 25,
    "users.history.list": 2,
}


def discovery_document() -> dict:
    """The packaged gmail.v1 discovery document (a fresh copy each call), read as the adapter reads it."""
    from mailhelpdesk.backends._internals import gmail_discovery_document

    return gmail_discovery_document()


def _load_palette() -> frozenset[str]:
    try:
        desc = discovery_document()["schemas"]["LabelColor"]["properties"]["backgroundColor"]["description"]
        found = re.findall(r"#[0-9a-fA-F]{6}", desc)
        if found:
            return frozenset(c.lower() for c in found)
    except Exception:  # pragma: no cover - the document always ships with the client
        pass
    return frozenset()


#: The label colours Gmail accepts (from the discovery document's LabelColor description).
LABEL_PALETTE: frozenset[str] = _load_palette()

_SYSTEM_LABELS = [
    "CHAT", "SENT", "INBOX", "IMPORTANT", "TRASH", "DRAFT", "SPAM",
    "CATEGORY_FORUMS", "CATEGORY_UPDATES", "CATEGORY_PERSONAL", "CATEGORY_PROMOTIONS", "CATEGORY_SOCIAL",
    "STARRED", "UNREAD",
]
# System labels that messages.modify may not add or remove ("Invalid label: SENT").
_UNSETTABLE = {"SENT", "DRAFT", "CHAT"}
# Names a user label may not take (case-insensitive): "400 Invalid label name".
_RESERVED_NAMES = {
    "inbox", "spam", "trash", "unread", "starred", "important", "sent", "draft", "drafts", "chat", "chats",
    "muted", "all mail", "scheduled", "snoozed", "outbox", "bin", "sent mail", "[imap]",
    "category_forums", "category_updates", "category_personal", "category_promotions", "category_social",
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}
# Default (reason, message, domain) for injected failures.
_FAILURE_DEFAULTS = {
    429: ("rateLimitExceeded", "Too many concurrent requests for user", "global"),
    403: ("rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
          "usageLimits"),
    500: ("backendError", "Backend Error", "global"),
    503: ("backendError", "The service is currently unavailable.", "global"),
}
_NOT_FOUND = "Requested entity was not found."
_HEX_ID = re.compile(r"^[0-9a-f]{1,20}$")
_WEEK_MS = 7 * 24 * 3600 * 1000
DEFAULT_START = _dt.datetime(2026, 11, 20, 10, 0, tzinfo=_dt.timezone.utc)  # the day of tests/fixtures/eml


def ticking_from(start: _dt.datetime):
    """A clock (seconds since the epoch) that reads ``start`` now and then moves on in real seconds: it follows
    no machine's calendar, so nothing built on it turns old on a later day."""
    origin = time.monotonic()
    return lambda: start.timestamp() + (time.monotonic() - origin)


class ApiError(Exception):
    """An error answered in Google's JSON error shape."""

    def __init__(self, code: int, message: str, reason: str | None = None, domain: str = "global",
                 status: str | None = None, extra: dict | None = None, with_errors: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or {400: "invalidArgument", 401: "authError", 403: "forbidden", 404: "notFound",
                                 409: "aborted"}.get(code, "backendError")
        self.domain = domain
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")
        self.extra = extra or {}
        self.with_errors = with_errors

    def body(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.with_errors:
            item = {"message": self.message, "domain": self.domain, "reason": self.reason}
            item.update(self.extra)
            err["errors"] = [item]
        err["status"] = self.status
        return {"error": err}


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64url(text: str) -> bytes:
    """base64url with or without padding; standard base64 is accepted too, as Gmail does."""
    return base64.urlsafe_b64decode(text.strip() + "==")


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _decode_header(value: str | None) -> str:
    if value is None:
        return ""
    value = _unfold(str(value))
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


_PREFIX_RE = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|rif|tr|ref)\s*(?:\[\d+\])?\s*[:：]\s*)+", re.I)


def normalize_subject(subject: str | None) -> str:
    """Subject as Gmail compares it for threading: Re:/Fwd: prefixes stripped, whitespace and case folded."""
    s = _decode_header(subject)
    s = _PREFIX_RE.sub("", s)
    return re.sub(r"\s+", " ", s).strip().lower()


def _msgids(value: str | None) -> list[str]:
    if not value:
        return []
    return re.findall(r"<([^<>\s]+)>", _unfold(str(value)))


def _snippet_escape(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "&#39;")


def _html_to_text(markup: str) -> str:
    """Rough text of HTML, for snippets and free-text search only."""
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", markup)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", markup))


def _part_text(part) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part) -> bool:
    return bool(part.get_filename()) or (part.get("Content-Disposition", "").lower().startswith("attachment"))


def _to_ms(value) -> int:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(value)
    raise TypeError("internal_date must be a datetime or epoch milliseconds")


_PACIFIC = ZoneInfo("America/Los_Angeles")


def _search_date_ms(value: str) -> int | None:
    """after:/before: value -> epoch ms. Dates are midnight Pacific time (Gmail's rule); digits are epoch s."""
    value = value.strip().strip('"')
    if value.isdigit():
        return int(value) * 1000
    m = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", value)
    if not m:
        return None
    y, mo, d = (int(x) for x in m.groups())
    try:
        return int(_dt.datetime(y, mo, d, tzinfo=_PACIFIC).timestamp() * 1000)
    except ValueError:
        return None


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes")


def _label_norm(name: str) -> str:
    return re.sub(r"[\s/\-]+", "-", name.strip().strip('"').lower())


# --------------------------------------------------------------------------------------------------
# Mailbox model
# --------------------------------------------------------------------------------------------------


class _Message:
    __slots__ = ("id", "thread_id", "label_ids", "raw", "internal_date", "history_id", "_parsed", "_text")

    def __init__(self, msg_id: str, thread_id: str, label_ids: list[str], raw: bytes, internal_date: int,
                 history_id: int):
        self.id = msg_id
        self.thread_id = thread_id
        self.label_ids = label_ids
        self.raw = raw
        self.internal_date = internal_date
        self.history_id = history_id
        self._parsed = None
        self._text = None

    @property
    def parsed(self):
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        return self._parsed

    def header(self, name: str) -> str:
        return _decode_header(self.parsed.get(name))

    @property
    def message_id(self) -> str | None:
        ids = _msgids(self.parsed.get("Message-ID"))
        return ids[0] if ids else None

    def refs(self) -> list[str]:
        """Message-IDs this message refers to, most relevant first (In-Reply-To, then References newest first)."""
        out: list[str] = []
        for mid in _msgids(self.parsed.get("In-Reply-To")) + list(reversed(_msgids(self.parsed.get("References")))):
            if mid not in out:
                out.append(mid)
        return out

    def body_text(self) -> str:
        if self._text is None:
            plain, htm = None, None
            for part in self.parsed.walk():
                if part.is_multipart() or _is_attachment(part):
                    continue
                ctype = part.get_content_type()
                if ctype == "text/plain" and plain is None:
                    plain = _part_text(part)
                elif ctype == "text/html" and htm is None:
                    htm = _html_to_text(_part_text(part))
            self._text = plain if plain is not None else (htm or "")
        return self._text

    def snippet(self) -> str:
        text = re.sub(r"\s+", " ", self.body_text()).strip()
        return _snippet_escape(text[:200])

    def has_attachment(self) -> bool:
        return any(_is_attachment(p) for p in self.parsed.walk() if not p.is_multipart())

    def ref(self) -> dict:
        return {"id": self.id, "threadId": self.thread_id}

    def snap(self) -> dict:
        return {"id": self.id, "threadId": self.thread_id, "labelIds": list(self.label_ids)}


class _Query:
    """A parsed Gmail search query (a practical subset). Terms separated by spaces are ANDed; ``-`` negates;
    ``a OR b`` ors two adjacent terms."""

    _TOKEN = re.compile(r'\s*(-?)(?:([A-Za-z_][A-Za-z0-9_-]*):)?("[^"]*"|\S+)')

    def __init__(self, fake: "GmailFake", q: str | None, now_ms: int):
        self.fake = fake
        self.now_ms = now_ms
        self.wants_spam_trash = False
        self.groups: list[list[tuple[bool, str | None, str]]] = []
        text = (q or "").strip()
        pending_or = False
        for m in self._TOKEN.finditer(text):
            neg, op, val = m.group(1) == "-", (m.group(2) or "").lower() or None, m.group(3)
            if not val:
                continue
            if op is None and val == "OR" and not neg:
                pending_or = True
                continue
            term = (neg, op, val.strip('"'))
            if op == "in" and term[2].lower() in ("spam", "trash", "anywhere") and not neg:
                self.wants_spam_trash = True
            if pending_or and self.groups:
                self.groups[-1].append(term)
            else:
                self.groups.append([term])
            pending_or = False

    def matches(self, m: _Message) -> bool:
        return all(any(self._term(m, t) for t in group) for group in self.groups)

    def _term(self, m: _Message, term) -> bool:
        neg, op, val = term
        result = self._eval(m, op, val)
        return not result if neg else result

    def _has_label_named(self, m: _Message, name: str) -> bool:
        lid = self.fake._label_id_for_search(name)
        return lid is not None and lid in m.label_ids

    def _eval(self, m: _Message, op: str | None, val: str) -> bool:
        low = val.lower()
        if op == "in":
            mapping = {"inbox": "INBOX", "sent": "SENT", "trash": "TRASH", "spam": "SPAM", "drafts": "DRAFT",
                       "draft": "DRAFT", "starred": "STARRED", "important": "IMPORTANT", "unread": "UNREAD",
                       "chats": "CHAT"}
            if low in ("anywhere", "all"):
                return True
            if low in mapping:
                return mapping[low] in m.label_ids
            return self._has_label_named(m, val)
        if op == "is":
            if low == "read":
                return "UNREAD" not in m.label_ids
            mapping = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT", "sent": "SENT",
                       "draft": "DRAFT", "chat": "CHAT"}
            return mapping.get(low) in m.label_ids if low in mapping else False
        if op == "label":
            return self._has_label_named(m, val)
        if op == "category":
            cat = {"primary": "CATEGORY_PERSONAL", "personal": "CATEGORY_PERSONAL"}.get(low, "CATEGORY_" + val.upper())
            return cat in m.label_ids
        if op in ("newer_than", "older_than"):
            mm = re.fullmatch(r"(\d+)([dmyh])", low)
            if not mm:
                return False
            unit = {"h": 3600, "d": 86400, "m": 30 * 86400, "y": 365 * 86400}[mm.group(2)]
            cutoff = self.now_ms - int(mm.group(1)) * unit * 1000
            return m.internal_date > cutoff if op == "newer_than" else m.internal_date < cutoff
        if op in ("after", "newer", "before", "older"):
            ts = _search_date_ms(val)
            if ts is None:
                return False
            return m.internal_date >= ts if op in ("after", "newer") else m.internal_date < ts
        if op == "rfc822msgid":
            want = val.strip().strip("<>")
            return m.message_id == want
        if op in ("from", "to", "cc", "bcc", "subject", "deliveredto", "list", "reply-to"):
            header = {"deliveredto": "Delivered-To", "list": "List-Id"}.get(op, op)
            return low in m.header(header).lower()
        if op == "has":
            if low == "attachment":
                return m.has_attachment()
            user = any(lid.startswith("Label_") for lid in m.label_ids)
            if low == "userlabels":
                return user
            if low == "nouserlabels":
                return not user
            return False
        # Free text (also unknown operators): a case-insensitive substring of subject, addresses or body.
        needle = (op + ":" + val if op else val).lower()
        hay = " ".join([m.header("Subject"), m.header("From"), m.header("To"), m.header("Cc"), m.body_text()]).lower()
        return needle in hay


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"profile", "users.getProfile"),
    ("POST", r"watch", "users.watch"),
    ("GET", r"labels", "users.labels.list"),
    ("POST", r"labels", "users.labels.create"),
    ("GET", r"messages", "users.messages.list"),
    ("POST", r"messages", "users.messages.insert"),
    ("POST", r"messages/send", "users.messages.send"),
    ("POST", r"messages/batchModify", "users.messages.batchModify"),
    ("GET", r"messages/(?P<id>[^/]+)", "users.messages.get"),
    ("POST", r"messages/(?P<id>[^/]+)/modify", "users.messages.modify"),
    ("GET", r"history", "users.history.list"),
]
_COMPILED_ROUTES = [
    (meth, re.compile(r"^/gmail/v1/users/(?P<userId>[^/]+)/" + rx + r"$"), name) for meth, rx, name in _ROUTES
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gmail-fake/1"
    disable_nagle_algorithm = True  # small header/body writes would otherwise wait ~40 ms for delayed ACKs

    def _serve(self) -> None:
        fake: GmailFake = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out_headers, out = fake._handle_http(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake: answer 500 with the error, never hang the client
            err = ApiError(500, f"gmail_fake internal error: {exc!r}")
            status, out_headers, out = 500, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(
                err.body()).encode()
        self.send_response(status)
        for k, v in out_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass


class GmailFake:
    """An in-memory Gmail mailbox behind a local HTTP server speaking the Gmail API v1.

    Seeding/inspection (plain Python, thread-safe): :meth:`add_message`, :meth:`add_label`,
    :meth:`set_labels`, :meth:`expire_history`, :meth:`fail_next`, :meth:`message`, :meth:`message_ids`,
    :meth:`labels`, :meth:`label_id`, :attr:`history_id`, :attr:`sent`, :attr:`watch`, :attr:`notifications`.
    Counters: :attr:`calls` (one ``(method name, HTTP method, path)`` per API call, each call inside a
    batch counted), :attr:`quota_units`, :attr:`requests` (raw HTTP requests incl. ``/batch``),
    :meth:`reset_counters`.
    Auth: set :attr:`require_token` to make calls without ``Authorization: Bearer <token>`` answer 401.
    A token endpoint at :attr:`token_uri` accepts refresh tokens in :attr:`refresh_tokens`.
    """

    def __init__(self, email_address: str = "helpdesk@example.com", *, seed: int | None = None, clock=None):
        self.email = email_address
        # seconds since the epoch; by default DEFAULT_START ticking on, never the machine's date; replace to move "now"
        self.clock = clock or ticking_from(DEFAULT_START)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        # mailbox
        self._messages: dict[str, _Message] = {}
        self._threads: dict[str, list[str]] = {}
        self._by_msgid: dict[str, list[str]] = {}
        self._labels: dict[str, dict] = {}
        for lid in _SYSTEM_LABELS:
            self._labels[lid] = {"id": lid, "name": lid, "type": "system"}
        self._labels["INBOX"].update(messageListVisibility="hide", labelListVisibility="labelShow")
        for lid in ("SENT", "DRAFT", "TRASH", "SPAM", "STARRED", "IMPORTANT", "CHAT"):
            self._labels[lid].update(messageListVisibility="hide", labelListVisibility="labelHide")
        self._next_label = 1
        self._last_msg_num = 0
        # history
        self._history_id = self._rng.randint(100_000, 999_999)
        self._history_floor = self._history_id
        self._history: list[dict] = []
        # paging tokens
        self._page_tokens: dict[str, Any] = {}
        # watch / push
        self.watch: dict | None = None
        self.notifications: list[dict] = []
        # sent mail (raw bytes as stored) for assertions
        self.sent: list[tuple[str, bytes]] = []
        # failure injection, auth
        self._failures: list[dict] = []
        self.require_token: str | None = None
        self.refresh_tokens: set[str] = set()
        self.token_requests = 0
        # counters
        self.calls: list[tuple[str, str, str]] = []
        self.quota_units = 0
        self.requests: list[tuple[str, str]] = []
        # server
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "GmailFake":
        if self._httpd is None:
            httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            httpd.daemon_threads = True
            httpd.fake = self  # type: ignore[attr-defined]
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="gmail-fake", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._httpd = None
            self._thread = None

    close = stop

    def __enter__(self) -> "GmailFake":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:40123/`` (use as api_endpoint/rootUrl)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    # ---------------------------------------------------------------- counters / failure injection
    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()
            self.quota_units = 0

    def call_counts(self) -> Counter:
        """Counter of API method names in :attr:`calls`."""
        with self._lock:
            return Counter(name for name, _m, _p in self.calls)

    def fail_next(self, n: int = 1, status: int = 429, reason: str | None = None, *, message: str | None = None,
                  method: str | None = None) -> None:
        """Make the next ``n`` API calls (optionally only calls of ``method``, e.g. "users.messages.send")
        answer ``status`` with a Gmail-shaped error. Inside a batch each sub-request counts as one call."""
        d_reason, d_message, domain = _FAILURE_DEFAULTS.get(status, ("backendError", "Error", "global"))
        if status == 403 and reason == "userRateLimitExceeded":
            d_message = "User Rate Limit Exceeded"
        with self._lock:
            self._failures.append({"n": n, "status": status, "reason": reason or d_reason,
                                   "message": message or d_message, "domain": domain, "method": method})

    def _take_failure(self, name: str) -> ApiError | None:
        for spec in self._failures:
            if spec["n"] > 0 and (spec["method"] in (None, name)):
                spec["n"] -= 1
                if spec["n"] == 0:
                    self._failures.remove(spec)
                return ApiError(spec["status"], spec["message"], spec["reason"], domain=spec["domain"])
        return None

    # ---------------------------------------------------------------- ids / history
    def _new_msg_id(self) -> str:
        now_ms = int(self.clock() * 1000)
        num = max(self._last_msg_num + self._rng.randint(1, 0xFFF), (now_ms << 20) | self._rng.randint(0, 0xFFFF))
        self._last_msg_num = num
        return format(num, "x")

    def _new_history(self) -> int:
        self._history_id += self._rng.randint(1, 97)
        return self._history_id

    def _record(self, **changes: list[dict]) -> int:
        """Append one history record: ``changes`` maps messagesAdded / labelsAdded / labelsRemoved to lists of
        ``{"message": snapshot[, "labelIds": [...]]}`` about one message. A watched mailbox notifies."""
        hid = self._new_history()
        message = next(iter(changes.values()))[0]["message"]
        self._history.append({"id": hid, "messages": [{"id": message["id"], "threadId": message["threadId"]}],
                              **changes})
        if self.watch is not None:
            self.notifications.append({"emailAddress": self.email, "historyId": hid})
        return hid

    @property
    def history_id(self) -> int:
        """The mailbox's current history id (what getProfile answers)."""
        with self._lock:
            return self._history_id

    def expire_history(self, before_history_id: int | str | None = None) -> None:
        """Forget history older than ``before_history_id`` (default: all of it): history.list with a smaller
        startHistoryId then answers 404 (as Gmail does once its retention window has passed)."""
        with self._lock:
            floor = self._history_id if before_history_id is None else int(before_history_id)
            self._history_floor = max(self._history_floor, floor)
            self._history = [r for r in self._history if r["id"] >= floor]

    # ---------------------------------------------------------------- labels (seeding)
    def label_id(self, name_or_id: str) -> str | None:
        """Label id for a label name (case-insensitive) or id."""
        with self._lock:
            if name_or_id in self._labels:
                return name_or_id
            low = name_or_id.lower()
            for lid, lab in self._labels.items():
                if lab["name"].lower() == low:
                    return lid
            return None

    def _label_id_for_search(self, name: str) -> str | None:
        if name.upper() in self._labels and self._labels[name.upper()]["type"] == "system":
            return name.upper()
        want = _label_norm(name)
        for lid, lab in self._labels.items():
            if lab["type"] == "user" and _label_norm(lab["name"]) == want:
                return lid
        return None

    def add_label(self, name: str) -> str:
        """Create a user label directly (no API call counted); returns its id (``Label_N``)."""
        with self._lock:
            return self._create_label({"name": name})["id"]

    def labels(self) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(v) for v in self._labels.values()]

    # ---------------------------------------------------------------- messages (seeding)
    def _resolve_labels(self, label_ids: Iterable[str]) -> list[str]:
        out = []
        for x in label_ids:
            lid = self.label_id(x)
            if lid is None:
                raise ValueError(f"unknown label {x!r}")
            if lid not in out:
                out.append(lid)
        return out

    def add_message(self, raw: bytes | str, label_ids: Iterable[str] = ("INBOX", "UNREAD"), internal_date=None) -> str:
        """Deliver a message as if received by SMTP; returns its id.

        Threading follows Gmail: the message joins the thread of a message it references (In-Reply-To /
        References) when the subjects match after stripping Re:/Fwd: prefixes; otherwise a new thread.
        ``internal_date`` is a datetime or epoch ms (default now).
        Records a ``messageAdded`` history entry."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        with self._lock:
            labels = self._resolve_labels(label_ids)
            date_ms = int(self.clock() * 1000) if internal_date is None else _to_ms(internal_date)
            return self._store(raw, labels, date_ms).id

    def set_labels(self, msg_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[str]:
        """Change labels as an agent would in the Gmail UI (ids or names); records labelAdded/labelRemoved
        history. Returns the message's new labelIds."""
        with self._lock:
            m = self._messages[msg_id]
            self._change_labels(m, self._resolve_labels(add), self._resolve_labels(remove))
            return list(m.label_ids)

    def message(self, msg_id: str) -> dict:
        """A snapshot of a stored message: id, threadId, labelIds, raw (bytes), internalDate, historyId."""
        with self._lock:
            m = self._messages[msg_id]
            return {"id": m.id, "threadId": m.thread_id, "labelIds": list(m.label_ids), "raw": m.raw,
                    "internalDate": m.internal_date, "historyId": m.history_id}

    def message_ids(self) -> list[str]:
        with self._lock:
            return list(self._messages)

    # ---------------------------------------------------------------- core mutations
    def _thread_accepts(self, thread_id: str, m_refs: list[str], subj_norm: str) -> bool:
        """Gmail's rule for joining a thread: references a message of the thread and the subject matches."""
        ids = self._threads.get(thread_id)
        if not ids or len(ids) >= 100:  # Gmail starts a new thread after 100 messages
            return False
        members = [self._messages[i] for i in ids]
        referenced = {mm.message_id for mm in members if mm.message_id}
        if not any(r in referenced for r in m_refs):
            return False
        return any(normalize_subject(mm.parsed.get("Subject")) == subj_norm for mm in members)

    def _auto_thread(self, refs: list[str], subj_norm: str) -> str | None:
        for ref in refs:
            for mid in reversed(self._by_msgid.get(ref, [])):
                other = self._messages.get(mid)
                if other and self._thread_accepts(other.thread_id, refs, subj_norm):
                    return other.thread_id
        return None

    def _store(self, raw: bytes, labels: list[str], date_ms: int, *, requested_thread: str | None = None,
               auto_thread: bool = True) -> _Message:
        msg_id = self._new_msg_id()
        m = _Message(msg_id, "", labels, raw, date_ms, 0)
        refs = m.refs()
        subj = normalize_subject(m.parsed.get("Subject"))
        thread_id = None
        if requested_thread is not None and self._thread_accepts(requested_thread, refs, subj):
            thread_id = requested_thread
        if thread_id is None and auto_thread:
            thread_id = self._auto_thread(refs, subj)
        if thread_id is None:
            thread_id = msg_id  # Gmail: a thread's id is the id of its first message
        m.thread_id = thread_id
        self._messages[msg_id] = m
        self._threads.setdefault(thread_id, []).append(msg_id)
        if m.message_id:
            self._by_msgid.setdefault(m.message_id, []).append(msg_id)
        m.history_id = self._record(messagesAdded=[{"message": m.snap()}])
        return m

    def _change_labels(self, m: _Message, add: list[str], remove: list[str]) -> None:
        added = [lid for lid in add if lid not in m.label_ids]
        m.label_ids.extend(added)
        removed = [lid for lid in remove if lid in m.label_ids and lid not in added]
        for lid in removed:
            m.label_ids.remove(lid)
        if not added and not removed:
            return
        snap, changes = m.snap(), {}
        if added:
            changes["labelsAdded"] = [{"message": snap, "labelIds": added}]
        if removed:
            changes["labelsRemoved"] = [{"message": snap, "labelIds": removed}]
        m.history_id = self._record(**changes)

    # ---------------------------------------------------------------- HTTP entry points
    def _handle_http(self, method: str, raw_path: str, headers: dict, body: bytes):
        with self._lock:
            self.requests.append((method, raw_path))
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        if method == "POST" and path in ("/batch", "/batch/gmail/v1"):
            return self._handle_batch(headers, body)
        if method == "POST" and path == "/token":
            return self._handle_token(body)
        status, hdrs, out = self._call(method, path, parsed.query, headers, body)
        return status, hdrs, out

    def _handle_token(self, body: bytes):
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        with self._lock:
            self.token_requests += 1
            ok = form.get("grant_type") == "refresh_token" and form.get("refresh_token") in self.refresh_tokens
            token = self.require_token or "fake-access-token"
        if not ok:
            out = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            return 400, [("Content-Type", "application/json; charset=utf-8")], json.dumps(out).encode()
        out = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        return 200, [("Content-Type", "application/json; charset=utf-8")], json.dumps(out).encode()

    def _json_response(self, status: int, obj) -> tuple[int, list, bytes]:
        if status == 204 or obj is None:
            return 204, [], b""
        data = json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")
        return status, [("Content-Type", "application/json; charset=UTF-8")], data

    def _error_response(self, err: ApiError) -> tuple[int, list, bytes]:
        status, hdrs, data = self._json_response(err.code, err.body())
        if err.code == 401:
            hdrs = hdrs + [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')]
        return status, hdrs, data

    def _route(self, method: str, path: str):
        for meth, rx, name in _COMPILED_ROUTES:
            if meth != method:
                continue
            m = rx.match(path)
            if m:
                params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
                return name, params
        return None, {}

    def _call(self, method: str, path: str, query: str, headers: dict, body: bytes,
              outer_headers: dict | None = None) -> tuple[int, list, bytes]:
        name, params = self._route(method, path)
        if name is None:
            if re.match(r"^/(upload/)?gmail/v1/users/", path):  # a method (or an upload) the adapter never calls
                err = ApiError(501, f"gmail_fake does not implement {method} {path}")
            else:
                err = ApiError(404, "Not Found", "notFound")
            return self._error_response(err)
        qs = urllib.parse.parse_qs(query, keep_blank_values=True)
        with self._lock:
            self.calls.append((name, method, path))
            # auth (checked before anything else, like Google's front end)
            if self.require_token is not None:
                auth = headers.get("authorization") or (outer_headers or {}).get("authorization") or ""
                token = auth[7:].strip() if auth.lower().startswith("bearer ") else (qs.get("access_token") or [""])[0]
                if token != self.require_token:
                    return self._error_response(ApiError(
                        401,
                        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                        "cookie or other valid authentication credential. See "
                        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                        "authError", extra={"location": "Authorization", "locationType": "header"}))
            failure = self._take_failure(name)
            if failure is not None:
                return self._error_response(failure)
            self.quota_units += QUOTA_UNITS.get(name, 5)
            try:
                user = params.pop("userId")
                if user != "me" and user.lower() != self.email.lower():
                    raise ApiError(403, f"Delegation denied for {self.email}", "forbidden")
                if qs.get("fields"):
                    raise ApiError(501, "gmail_fake does not implement partial responses (fields=)")
                handler = getattr(self, "_api_" + name.split(".", 1)[1].replace(".", "_"))
                status, obj = handler(params, qs, self._parse_body(body))
            except ApiError as err:
                return self._error_response(err)
        return self._json_response(status, obj)

    def _parse_body(self, body: bytes) -> dict:
        if not body:
            return {}
        try:
            obj = json.loads(body)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "Invalid JSON payload received.")
        return obj

    # ---------------------------------------------------------------- batch
    def _handle_batch(self, headers: dict, body: bytes):
        ctype = headers.get("content-type", "")
        if not ctype.startswith("multipart/mixed"):
            return self._error_response(ApiError(400, "Batch requests must be multipart/mixed", with_errors=False))
        envelope = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                            policy=email.policy.compat32)
        parts = envelope.get_payload() if envelope.is_multipart() else []
        if len(parts) > 100:
            return self._error_response(ApiError(
                400, f"Inner request count exceeds the limit. Received: {len(parts)}, Limit: 100", with_errors=False))
        boundary = "batch_" + "".join(self._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
                                      for _ in range(28))
        chunks: list[bytes] = []
        for part in parts:
            cid = (part.get("Content-ID") or "").strip()
            inner = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
            payload = part.get_payload(decode=False)
            if isinstance(payload, list):  # not application/http
                status, hdrs, out = self._error_response(ApiError(400, "Invalid batch part"))
            else:
                status, hdrs, out = self._batch_sub(payload, headers)
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
            head += [f"{k}: {v}" for k, v in hdrs]
            if status == 204:
                head.append("Content-Length: 0")
            chunk = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{inner}>\r\n\r\n"
                     + "\r\n".join(head) + "\r\n\r\n").encode("utf-8") + out + b"\r\n"
            chunks.append(chunk)
        data = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        return 200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], data

    def _batch_sub(self, payload: str, outer_headers: dict):
        """One part of a batch: an HTTP request (request line, headers, body) run as if it came alone."""
        request_line, _, rest = payload.replace("\r\n", "\n").partition("\n")
        try:
            method, target, _version = request_line.strip().split(" ", 2)
        except ValueError:
            return self._error_response(ApiError(400, "Invalid batch part request line"))
        request = email.message_from_string(rest, policy=email.policy.compat32)
        headers = {k.lower(): v for k, v in request.items()}
        body = request.get_payload().encode("utf-8", "surrogateescape")
        length = headers.get("content-length", "")
        body = body[: int(length)] if length.isdigit() else body.rstrip(b"\n")
        split = urllib.parse.urlsplit(target)
        return self._call(method.upper(), split.path, split.query, headers, body, outer_headers=outer_headers)

    # ---------------------------------------------------------------- API helpers
    def _get_msg(self, msg_id: str) -> _Message:
        if not _HEX_ID.match(msg_id or ""):
            raise ApiError(400, "Invalid id value")
        m = self._messages.get(msg_id)
        if m is None:
            raise ApiError(404, _NOT_FOUND)
        return m

    def _check_label_ids(self, label_ids, *, for_modify: bool) -> list[str]:
        out = []
        for lid in label_ids or []:
            if lid not in self._labels:
                if re.fullmatch(r"Label_\d+", lid):
                    raise ApiError(400, "labelId not found")
                raise ApiError(400, f"Invalid label: {lid}")
            if for_modify and lid in _UNSETTABLE:
                raise ApiError(400, f"Invalid label: {lid}")
            if lid not in out:
                out.append(lid)
        return out

    def _max_results(self, qs, default=100, maximum=500) -> int:
        raw = (qs.get("maxResults") or [None])[0]
        if raw in (None, ""):
            return default
        try:
            n = int(raw)
        except ValueError:
            raise ApiError(400, f"Invalid value '{raw}'. Values must match the following regular expression: "
                                f"'[0-9]+'") from None
        if n < 1:
            return default
        return min(n, maximum)

    def _new_page_token(self, state) -> str:
        token = "".join(self._rng.choice("0123456789") for _ in range(20))
        self._page_tokens[token] = state
        return token

    def _page_state(self, qs, kind: str):
        token = (qs.get("pageToken") or [None])[0]
        if not token:
            return None
        state = self._page_tokens.get(token)
        if state is None or state[0] != kind:
            raise ApiError(400, "Invalid pageToken")
        return state[1]

    def _matching_messages(self, qs) -> list[_Message]:
        label_ids = self._check_label_ids(qs.get("labelIds"), for_modify=False)
        query = _Query(self, (qs.get("q") or [None])[0], int(self.clock() * 1000))
        include_st = _bool((qs.get("includeSpamTrash") or [None])[0]) or query.wants_spam_trash
        out = []
        for m in self._messages.values():
            if not include_st and ("SPAM" in m.label_ids or "TRASH" in m.label_ids) and not (
                    {"SPAM", "TRASH"} & set(label_ids)):
                continue
            if any(lid not in m.label_ids for lid in label_ids):
                continue
            if not query.matches(m):
                continue
            out.append(m)
        out.sort(key=lambda mm: (mm.internal_date, mm.id), reverse=True)
        return out

    def _message_json(self, m: _Message, fmt: str) -> dict:
        out: dict[str, Any] = {"id": m.id, "threadId": m.thread_id, "labelIds": list(m.label_ids),
                               "snippet": m.snippet(), "sizeEstimate": len(m.raw), "historyId": str(m.history_id),
                               "internalDate": str(m.internal_date)}
        if fmt == "raw":
            out["raw"] = _b64url(m.raw)
        return out

    def _fmt(self, qs) -> str:
        fmt = (qs.get("format") or ["full"])[0].lower()
        if fmt in ("full", "metadata"):  # the default is full: the adapter always asks for raw
            raise ApiError(501, f"gmail_fake does not implement format={fmt}")
        if fmt not in ("minimal", "raw"):
            raise ApiError(400, f"Invalid value at 'format' ({fmt})")
        return fmt

    def _raw_from_body(self, body: dict) -> bytes:
        raw = body.get("raw")
        if not raw:
            raise ApiError(400, "'raw' RFC822 payload message string or uploading message via /upload/* URL required")
        try:
            return _unb64url(raw)
        except Exception:
            raise ApiError(400, "Invalid value for ByteString: " + str(raw)[:40]) from None

    # ---------------------------------------------------------------- users
    def _api_getProfile(self, params, qs, body):
        return 200, {"emailAddress": self.email, "messagesTotal": len(self._messages),
                     "threadsTotal": len(self._threads), "historyId": str(self._history_id)}

    def _api_watch(self, params, qs, body):
        topic = body.get("topicName") or ""
        if not re.fullmatch(r"projects/[^/]+/topics/[^/]+", topic):
            raise ApiError(400, "Invalid topicName does not match projects/SOME-ANDROID-PROJECT/topics/*")
        if body.get("labelIds"):
            self._check_label_ids(body["labelIds"], for_modify=False)
        expiration = int(self.clock() * 1000) + _WEEK_MS
        self.watch = {"topicName": topic, "labelIds": body.get("labelIds") or [],
                      "labelFilterBehavior": body.get("labelFilterBehavior") or body.get("labelFilterAction"),
                      "expiration": expiration}
        return 200, {"historyId": str(self._history_id), "expiration": str(expiration)}

    # ---------------------------------------------------------------- labels
    def _validate_label_body(self, body: dict) -> None:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
            raise ApiError(400, "Invalid label name")
        if name.strip().lower() in _RESERVED_NAMES or name.startswith("/") or name.endswith("/") or "//" in name:
            raise ApiError(400, "Invalid label name")
        if any(lab["type"] == "user" and lab["name"].lower() == name.lower() for lab in self._labels.values()):
            raise ApiError(409, "Label name exists or conflicts", "aborted")
        for key, allowed in (("labelListVisibility", ("labelShow", "labelShowIfUnread", "labelHide")),
                             ("messageListVisibility", ("show", "hide"))):
            if key in body and body[key] is not None and body[key] not in allowed:
                raise ApiError(400, f"Invalid value at 'label.{key}' ({body[key]})")
        color = body.get("color")
        if color is not None:
            if not isinstance(color, dict):
                raise ApiError(400, "Invalid label color")
            bg, fg = color.get("backgroundColor"), color.get("textColor")
            if not bg or not fg:
                raise ApiError(400, "Label color must specify both backgroundColor and textColor")
            for c in (bg, fg):
                if not isinstance(c, str) or c.lower() not in LABEL_PALETTE:
                    raise ApiError(400, f"Label color {c} is not on the allowed color palette")

    def _create_label(self, body: dict) -> dict:
        self._validate_label_body(body)
        lid = f"Label_{self._next_label}"
        self._next_label += 1
        lab = {"id": lid, "name": body["name"],
               "messageListVisibility": body.get("messageListVisibility") or "show",
               "labelListVisibility": body.get("labelListVisibility") or "labelShow",
               "type": "user"}
        if body.get("color"):
            lab["color"] = {"textColor": body["color"]["textColor"].lower(),
                            "backgroundColor": body["color"]["backgroundColor"].lower()}
        self._labels[lid] = lab
        return lab

    def _api_labels_list(self, params, qs, body):
        return 200, {"labels": copy.deepcopy(list(self._labels.values()))}

    def _api_labels_create(self, params, qs, body):
        return 200, copy.deepcopy(self._create_label(body))

    # ---------------------------------------------------------------- messages
    def _api_messages_list(self, params, qs, body):
        found = self._matching_messages(qs)
        start = self._page_state(qs, "messages") or 0
        size = self._max_results(qs)
        page = found[start:start + size]
        out: dict[str, Any] = {}
        if page:
            out["messages"] = [m.ref() for m in page]
        if start + size < len(found):
            out["nextPageToken"] = self._new_page_token(("messages", start + size))
        out["resultSizeEstimate"] = len(found)
        return 200, out

    def _api_messages_get(self, params, qs, body):
        m = self._get_msg(params["id"])
        return 200, self._message_json(m, self._fmt(qs))

    def _api_messages_modify(self, params, qs, body):
        m = self._get_msg(params["id"])
        add = self._check_label_ids(body.get("addLabelIds"), for_modify=True)
        remove = self._check_label_ids(body.get("removeLabelIds"), for_modify=True)
        if not add and not remove:
            raise ApiError(400, "No label add or removes specified")
        self._change_labels(m, add, remove)
        return 200, m.snap()

    def _api_messages_batchModify(self, params, qs, body):
        ids = body.get("ids") or []
        if not ids:
            raise ApiError(400, "ids must be specified")  # (guess)
        if len(ids) > 1000:
            raise ApiError(400, "Number of ids cannot exceed 1000")
        add = self._check_label_ids(body.get("addLabelIds"), for_modify=True)
        remove = self._check_label_ids(body.get("removeLabelIds"), for_modify=True)
        if not add and not remove:
            raise ApiError(400, "No label add or removes specified")
        for mid in ids:
            if not _HEX_ID.match(mid or ""):
                raise ApiError(400, "Invalid id value")
        for mid in ids:
            m = self._messages.get(mid)
            if m is not None:  # (guess) unknown ids are skipped
                self._change_labels(m, add, remove)
        return 204, None

    def _requested_thread(self, body: dict) -> str | None:
        tid = body.get("threadId")
        if tid in (None, ""):
            return None
        if not _HEX_ID.match(tid):
            raise ApiError(400, "Invalid thread_id value")
        return tid

    def _api_messages_insert(self, params, qs, body):
        if (qs.get("internalDateSource") or ["receivedTime"])[0] != "receivedTime":
            raise ApiError(501, "gmail_fake does not implement internalDateSource=dateHeader")
        raw = self._raw_from_body(body)
        labels = self._check_label_ids(body.get("labelIds"), for_modify=False)
        m = self._store(raw, labels, int(self.clock() * 1000), requested_thread=self._requested_thread(body))
        return 200, m.snap()

    def _api_messages_send(self, params, qs, body):
        raw = self._raw_from_body(body)
        requested = self._requested_thread(body)
        raw, recipients = self._prepare_outgoing(raw)
        labels = ["SENT"]
        if any(r.lower() == self.email.lower() for r in recipients):
            labels.append("INBOX")  # (guess) mail to yourself also lands in the inbox
        # Sent mail joins a thread only when threadId is given (and Gmail's rule holds).
        m = self._store(raw, labels, int(self.clock() * 1000), requested_thread=requested, auto_thread=False)
        self.sent.append((m.id, raw))
        return 200, m.snap()

    def _prepare_outgoing(self, raw: bytes) -> tuple[bytes, list[str]]:
        """Validate recipients and add what Gmail adds on send (Message-ID, Date, From) without touching the
        rest of the bytes; an existing Message-ID is kept."""
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        recipients = []
        for hdr in ("To", "Cc", "Bcc"):
            values = msg.get_all(hdr) or []
            for _name, addr in email.utils.getaddresses([_decode_header(v) for v in values]):
                if not addr:
                    continue
                if "@" not in addr:
                    raise ApiError(400, f"Invalid {hdr} header")
                recipients.append(addr)
        if not recipients:
            raise ApiError(400, "Recipient address required")
        sep = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
        idx = raw.find(sep + sep)
        head, rest = (raw[:idx], raw[idx:]) if idx >= 0 else (raw, b"")
        add: list[bytes] = []
        from_values = msg.get_all("From") or []
        if not from_values:
            add.append(b"From: " + self.email.encode())
        else:
            name, addr = email.utils.parseaddr(_decode_header(from_values[0]))
            if addr.lower() != self.email.lower():  # Gmail rewrites an address the account may not send as
                new_from = email.utils.formataddr((name, self.email)) if name else self.email
                head = re.sub(rb"(?im)^From:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*", lambda _m: b"From: " + new_from.encode(),
                              head, count=1)
        if not msg.get("Message-ID"):
            token = "".join(self._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_-")
                            for _ in range(40))
            add.append(f"Message-ID: <CA{token}@mail.gmail.com>".encode())
        if not msg.get("Date"):
            now = _dt.datetime.fromtimestamp(self.clock(), _dt.timezone.utc)
            add.append(b"Date: " + email.utils.format_datetime(now).encode())
        if add:
            head = sep.join(add) + sep + head
        return head + rest, recipients

    # ---------------------------------------------------------------- history
    def _api_history_list(self, params, qs, body):
        raw_start = (qs.get("startHistoryId") or [""])[0]
        if not raw_start:
            raise ApiError(400, "startHistoryId is required")  # (guess) wording
        if not raw_start.isdigit():
            raise ApiError(400, f"Invalid value '{raw_start}' for startHistoryId")
        start = int(raw_start)
        if start < self._history_floor:
            raise ApiError(404, _NOT_FOUND)
        types = qs.get("historyTypes") or []
        type_keys = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted",
                     "labelAdded": "labelsAdded", "labelRemoved": "labelsRemoved"}
        for t in types:
            if t not in type_keys:
                raise ApiError(400, f"Invalid value at 'history_types' ({t})")
        keys = [type_keys[t] for t in types] or list(type_keys.values())
        label_id = (qs.get("labelId") or [None])[0]
        cursor = self._page_state(qs, "history")
        after = max(start, cursor) if cursor is not None else start
        size = self._max_results(qs)
        selected: list[dict] = []
        more = False
        for rec in self._history:
            if rec["id"] <= after:
                continue
            out_rec: dict[str, Any] = {"id": str(rec["id"])}
            kept_msgs: list[dict] = []
            for key in keys:
                entries = rec.get(key)
                if not entries:
                    continue
                if label_id is not None:
                    entries = [e for e in entries if label_id in e["message"].get("labelIds", [])
                               or label_id in e.get("labelIds", [])]
                if entries:
                    out_rec[key] = copy.deepcopy(entries)
                    for e in entries:
                        ref = {"id": e["message"]["id"], "threadId": e["message"]["threadId"]}
                        if ref not in kept_msgs:
                            kept_msgs.append(ref)
            if len(out_rec) == 1:
                continue
            if len(selected) == size:
                more = True
                break
            out_rec["messages"] = kept_msgs
            selected.append(out_rec)
        out: dict[str, Any] = {}
        if selected:
            out["history"] = [{"id": r["id"], "messages": r["messages"],
                               **{k: v for k, v in r.items() if k not in ("id", "messages")}} for r in selected]
        if more:
            out["nextPageToken"] = self._new_page_token(("history", int(selected[-1]["id"])))
        out["historyId"] = str(self._history_id)
        return 200, out


# --------------------------------------------------------------------------------------------------
# Client helper
# --------------------------------------------------------------------------------------------------


def build_service(server: GmailFake, credentials=None):
    """A googleapiclient Gmail Resource whose every URL, batch included, points at ``server``.

    Built with ``build_from_document`` from the packaged discovery document with ``rootUrl``,
    ``baseUrl`` and ``mtlsRootUrl`` patched; ``new_batch_http_request()`` then posts to
    ``<server.url>batch``. Default credentials: a bearer token equal to ``server.require_token``
    (or "fake-token")."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build_from_document

    doc = discovery_document()
    doc["rootUrl"] = server.url
    doc["mtlsRootUrl"] = server.url
    doc["baseUrl"] = server.url
    if credentials is None:
        credentials = Credentials(token=server.require_token or "fake-token")
    return build_from_document(doc, credentials=credentials)
