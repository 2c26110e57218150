"""Gmail API adapter: history-based sync (one history.list call when idle), batched gets and label changes,
real Gmail labels with palette colours, replies sent into the ticket's thread."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from mailhelpdesk.config import Config
from mailhelpdesk.errors import AuthError, ConfigError, MailboxError
from mailhelpdesk.core.labels import records_label
from mailhelpdesk.backends.base import Changes, RawMessage, new_mail_line
from mailhelpdesk.capabilities import GMAIL
from mailhelpdesk.backends.retry import persist

log = logging.getLogger("mailhelpdesk")

SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
WATCH_RENEW = 24 * 3600  # Google: renew users.watch at least every 7 days; once a day is recommended
ATTEMPTS = 6  # tries of one call or batch that hits rate limits or 5xx: waits of 1, 2, 4, 8, 16 s between them
PULL_SLICE = 5.0  # seconds one Pub/Sub long poll may block: a SIGTERM ends the daemon within it


def scopes_for(config: Config) -> list[str]:
    """gmail.modify only, plus Pub/Sub when push is configured."""
    return SCOPES + ([PUBSUB_SCOPE] if config.gmail.pubsub_subscription else [])
BATCH_SIZE = 50  # Google: at most 100 calls per batch, more than 50 not recommended
SKIP_LABELS = {"DRAFT", "SPAM", "TRASH"}
# colours from Gmail's fixed palette (LabelColor in the discovery document): text, background
COLOURS = {
    "Status/Open": ("#ffffff", "#fb4c2f"),
    "Status/Pending": ("#000000", "#ffad47"),
    "Status/Resolved": ("#ffffff", "#16a766"),
    "Status/Closed": ("#ffffff", "#666666"),
    "Priority/Urgent": ("#ffffff", "#cc3a21"),
    "Priority/High": ("#000000", "#fad165"),
    "Priority/Normal": ("#000000", "#c9daf8"),
    "Priority/Low": ("#000000", "#e7e7e7"),
    "Overdue": ("#ffffff", "#ac2b16"),
    "Ignored": ("#000000", "#cccccc"),
    "Quarantine": ("#ffffff", "#822111"),
}


def save_token(path: Path, credentials: Any) -> None:
    """Write the OAuth token with mode 0600 from the start (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover may have another mode: O_CREAT keeps an existing file's mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(credentials.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    os.chmod(path, 0o600)


# --- `mailhelpdesk auth` ------------------------------------------------------------------------------

GET_CLIENT = (
    "in Google Cloud Console (APIs & Services > Credentials) create an OAuth client ID of type "
    "'Desktop app' and download its JSON"
)
TEXT_BROWSERS = {"www-browser", "links", "links2", "elinks", "lynx", "w3m", "browsh"}  # cannot show Google's sign-in


def load_client_file(path: Path) -> dict[str, Any]:
    """The OAuth client JSON, checked; each wrong kind of file is one line saying which file is needed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: OAuth client file not found: {GET_CLIENT} to this path (or set [gmail] credentials_file)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the OAuth client file ({_one_line(exc)})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{path}: not JSON ({_one_line(exc)}); it must be an OAuth client file: {GET_CLIENT}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: JSON but not an OAuth client file: {GET_CLIENT}")
    if data.get("type") == "service_account":
        raise ConfigError(
            f"{path} is a service-account key, not an OAuth client: use it with [gmail] service_account_file and "
            f"delegated_user (Workspace domain-wide delegation; no `auth` needed), or for `auth` {GET_CLIENT}"
        )
    if "web" in data:
        raise ConfigError(
            f"{path} is an OAuth client of type 'Web application': `mailhelpdesk auth` needs one of type 'Desktop app' "
            f"(a web client accepts only the redirect addresses registered for it, not http://localhost on any port): "
            f"{GET_CLIENT}"
        )
    installed = data.get("installed")
    if not isinstance(installed, dict):
        raise ConfigError(f'{path}: JSON but not an OAuth client file (no "installed" section): {GET_CLIENT}')
    missing = [key for key in ("client_id", "client_secret", "auth_uri", "token_uri") if not installed.get(key)]
    if missing:
        raise ConfigError(f'{path}: the "installed" section lacks {", ".join(missing)}: download the client JSON again')
    return data


def authorize(
    config: Config,
    open_browser: bool = True,
    echo: Callable[[str], None] = print,
    prompt: Callable[[str], str] = input,
) -> Path:
    """`mailhelpdesk auth`: the installed-app OAuth flow, asking only for gmail.modify; writes the token (0600).

    With a browser on this machine Google redirects it to a local server here. Without one (`--no-browser`, or
    none can be opened) the user opens the URL on any machine and pastes back the address Google redirected to."""
    if config.gmail.service_account_file:
        raise ConfigError(
            f"{config.path}: [gmail] service_account_file is set, so mailhelpdesk uses the service account and needs "
            "no `auth`; remove that key to use an OAuth token instead"
        )
    client_config = load_client_file(config.resolve(config.gmail.credentials_file))
    scopes = scopes_for(config)
    credentials = None
    if open_browser:
        if _browser_available():
            credentials = _local_server_flow(client_config, scopes)
        if credentials is None:
            echo("No web browser can be opened on this machine: finish in a browser elsewhere, by copy and paste.")
    if credentials is None:
        credentials = _paste_flow(client_config, scopes, echo, prompt)
    token = config.resolve(config.gmail.token_file)
    save_token(token, credentials)
    echo(f"token saved to {token} (mode 0600); scope: {', '.join(scopes)}")
    return token


def _browser_available() -> bool:
    import webbrowser

    try:
        controller = webbrowser.get()
    except webbrowser.Error:
        return False
    return getattr(controller, "name", "") not in TEXT_BROWSERS


def _local_server_flow(client_config: dict[str, Any], scopes: list[str]) -> Any:
    """A browser here: Google redirects it to a one-shot server on localhost. None when no browser opened."""
    import webbrowser

    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(client_config, scopes)
    try:
        with _token_errors(flow):
            flow.run_local_server(
                port=0,
                open_browser=True,
                prompt="consent",  # always hand out a refresh token
                authorization_prompt_message="A browser opens to authorise mailhelpdesk; if not, open:\n{url}",
                success_message="mailhelpdesk is authorised; you can close this window.",
            )
    except webbrowser.Error:
        return None
    except OSError as exc:
        raise AuthError(
            f"cannot listen on localhost for Google's redirect ({_one_line(exc)}): use --no-browser"
        ) from None
    return _credentials(flow)


def _paste_flow(
    client_config: dict[str, Any], scopes: list[str], echo: Callable[[str], None], prompt: Callable[[str], str]
) -> Any:
    """No browser here: the user opens the URL anywhere and pastes back where Google sent the browser (or the code)."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(client_config, scopes)
    # Desktop-app clients accept http://localhost with any port; nothing listens there, the address is only copied
    flow.redirect_uri = f"http://localhost:{49152 + secrets.randbelow(16384)}/"
    url, state = flow.authorization_url(prompt="consent")  # prompt=consent: always hand out a refresh token
    echo("Open this URL in a browser on any machine and allow access to the mailbox:\n")
    echo(f"  {url}\n")
    echo(
        f"Google then sends the browser to {flow.redirect_uri}?state=...&code=... and that page fails to load "
        "(\"This site can't be reached\", \"Unable to connect\"): that is expected. Copy the whole address from the address bar (or just "
        "the code) and paste it here; it works once, within a few minutes."
    )
    code = _pasted_code(prompt("Address or code"), state)
    with _token_errors(flow):
        flow.fetch_token(code=code)  # sends the same redirect_uri and the PKCE code_verifier
    return _credentials(flow)


def _pasted_code(answer: str, state: str) -> str:
    """The authorisation code from a pasted redirect address (its state checked) or from a pasted bare code."""
    from urllib.parse import parse_qs, unquote

    text = answer.strip().strip("\"'<>")
    if not text:
        raise AuthError("nothing was pasted: run `mailhelpdesk auth --no-browser` again and paste the address")
    if "://" not in text and not any(key in text for key in ("code=", "state=", "error=")):
        return unquote(text)  # a bare code; copied out of the address it may still be %-encoded (4%2F0A...)
    query = text.partition("?")[2] if "?" in text else text  # with or without http://localhost:PORT/
    params = {k: v[0] for k, v in parse_qs(query.partition("#")[0]).items()}
    if "error" in params:
        raise AuthError(
            f"Google answered {params['error']}: access was not granted; run `mailhelpdesk auth` again and allow it"
        )
    if not secrets.compare_digest(params.get("state", "").encode(), state.encode()):
        raise AuthError(
            "the pasted address belongs to another authorisation attempt (its state does not match this one): "
            "paste the address from the URL printed by this run, or run `mailhelpdesk auth` again"
        )
    if not params.get("code"):
        raise AuthError(
            "the pasted address has no code=: copy the address Google sent the browser to after you allowed access"
        )
    return params["code"]


@contextlib.contextmanager
def _token_errors(flow: Any) -> Iterator[None]:
    """What the token exchange can raise, as one AuthError line."""
    import requests
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    try:
        yield
    except OAuth2Error as exc:
        detail = exc.error + (f": {exc.description}" if exc.description else "")
        raise AuthError(
            f"Google refused the authorisation ({_one_line(detail)}); a code works once and only for a few minutes: "
            "run `mailhelpdesk auth` again"
        ) from None
    except requests.RequestException as exc:
        endpoint = flow.client_config["token_uri"]
        raise AuthError(f"cannot reach Google's token endpoint {endpoint}: {_one_line(exc)}") from None
    except Warning as exc:  # oauthlib: the scopes granted are not those asked for (a box left unticked)
        granted = " ".join(getattr(exc, "new_scope", None) or []) or "none"
        raise AuthError(
            f"Google granted the scopes {granted}, not {' '.join(flow.oauth2session.scope)}: run `mailhelpdesk auth` "
            "again and tick every box on the consent page"
        ) from None


def _credentials(flow: Any) -> Any:
    credentials = flow.credentials
    if not credentials.refresh_token:
        raise AuthError(
            "Google sent no refresh token, so the daemon could not keep access: run `mailhelpdesk auth` again"
        )
    return credentials


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


class RateLimited(MailboxError):
    """Gmail kept refusing some requests of a batch (rate limits, 5xx)."""


class GmailMailbox:
    CAPABILITIES = GMAIL
    kind = GMAIL.name

    @classmethod
    def from_config(cls, config: Config) -> "GmailMailbox":
        return cls(config)

    def __init__(self, config: Config, credentials: Any = None):
        self.config = config
        self.gmail = config.gmail
        self.root = config.helpdesk.label_root
        self._credentials = credentials
        self.service: Any = None
        self.label_ids: dict[str, str] = {}  # label name -> id
        self.label_names: dict[str, str] = {}  # id -> name
        self.own_sent: set[str] = set()  # ids of messages we sent: not news when the history shows them
        self._pending: dict[str, Any] | None = None  # the cursor this pass returned, completed by send()
        self.email = ""
        self.watched_at = 0.0
        self._stop: threading.Event | None = None  # the daemon's stop event: retry waits end when it is set

    # --- connection -------------------------------------------------------------------------------

    def _load_credentials(self) -> Any:
        if self._credentials is not None:
            return self._credentials
        g = self.gmail
        if g.service_account_file:
            from google.oauth2 import service_account

            path = self.config.resolve(g.service_account_file)
            if not g.delegated_user:
                raise AuthError("[gmail] delegated_user is required with service_account_file (the mailbox to act as)")
            try:
                creds = service_account.Credentials.from_service_account_file(str(path), scopes=scopes_for(self.config))
            except (OSError, ValueError) as exc:
                raise AuthError(f"[gmail] service_account_file {path}: {exc}") from None
            return creds.with_subject(g.delegated_user)
        from google.auth.exceptions import RefreshError
        from google.auth.transport.requests import Request
        from google.oauth2.credentials import Credentials

        token = self.config.resolve(g.token_file)
        if not token.exists():
            raise AuthError(f"no Gmail token at {token}: run `mailhelpdesk auth` first")
        try:
            info = json.loads(token.read_text())
            creds = Credentials.from_authorized_user_info(info, scopes_for(self.config))
        except (OSError, ValueError) as exc:
            raise AuthError(f"Gmail token {token} is unreadable ({exc}): run `mailhelpdesk auth` again") from None
        if info.get("scopes") and not set(scopes_for(self.config)) <= set(info["scopes"]):
            missing = ", ".join(sorted(set(scopes_for(self.config)) - set(info["scopes"])))
            raise AuthError(f"Gmail token {token} lacks the scope {missing}: run `mailhelpdesk auth` again")
        if not creds.valid and creds.refresh_token:
            try:
                creds.refresh(Request())
            except RefreshError as exc:
                raise AuthError(
                    f"the Gmail token was refused ({exc.args[0] if exc.args else exc}); it expired or was revoked: "
                    "run `mailhelpdesk auth` again (apps left in 'Testing' get tokens that expire after 7 days)"
                ) from None
            save_token(token, creds)
        return creds

    def connect(self) -> None:
        from googleapiclient.discovery import build, build_from_document

        creds = self._load_credentials()
        endpoint = self.gmail.api_endpoint
        if endpoint:
            from mailhelpdesk.backends._internals import gmail_discovery_document

            document = gmail_discovery_document()
            document["rootUrl"] = endpoint.rstrip("/") + "/"  # batch requests follow rootUrl, not api_endpoint
            document["baseUrl"] = document["rootUrl"] + document["servicePath"]
            self.service = build_from_document(document, credentials=creds)
        else:
            self.service = build("gmail", "v1", credentials=creds, static_discovery=True, cache_discovery=False)
        profile = self._execute(self.service.users().getProfile(userId="me"))
        self.email = profile.get("emailAddress", "")
        self._load_labels()

    def close(self) -> None:
        self.service = None

    def _call(self, request: Any) -> Any:
        """One API call, again (with backoff) after a rate limit, a 5xx or a dropped connection."""
        return persist(request.execute, passing=_passing, stop=self._stop, attempts=ATTEMPTS, first=1, most=32)

    def _execute(self, request: Any) -> Any:
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        try:
            return self._call(request)
        except RefreshError as exc:
            raise AuthError(f"the Gmail token was refused ({exc}): run `mailhelpdesk auth` again") from None
        except HttpError as exc:
            raise self._error(exc) from None
        except (OSError, TimeoutError) as exc:
            raise MailboxError(f"cannot reach the Gmail API: {exc}") from None

    def _error(self, exc: Any) -> MailboxError:
        status = exc.resp.status
        reason = _reason(exc)
        if status == 401:
            return AuthError("Gmail refused the token (401): it expired or was revoked; run `mailhelpdesk auth` again")
        if status == 403 and reason in ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"):
            return AuthError("the Gmail token lacks the gmail.modify scope: run `mailhelpdesk auth` again")
        return MailboxError(f"Gmail API error {status} ({reason}): {exc.reason if hasattr(exc, 'reason') else exc}")

    def describe(self) -> list[str]:
        creds = self._load_credentials()
        scopes = getattr(creds, "scopes", None) or SCOPES
        return [
            f"Gmail API account {self.email}",
            f"scope: {', '.join(scopes)}",
            f"labels under {self.root}/: {', '.join(sorted(n for n in self.label_ids if n.startswith(self.root + '/'))) or '(none yet)'}",
            f"first run imports: {self.gmail.initial_query!r}; afterwards history.list (1 call when idle)",
            new_mail_line("Pub/Sub push (seconds)" if self.gmail.pubsub_subscription else "",
                          self.config.mailbox.poll_interval, GMAIL.push),
        ]

    # --- labels -------------------------------------------------------------------------------

    def _load_labels(self) -> None:
        labels = self._execute(self.service.users().labels().list(userId="me")).get("labels", [])
        self.label_ids = {label["name"]: label["id"] for label in labels}
        self.label_names = {v: k for k, v in self.label_ids.items()}

    def prepare(self, labels: Iterable[str], create: bool = True) -> list[str]:
        if not create:
            return []  # the labels that exist were listed at connect(): a message can carry no other
        done = []
        wanted = set(labels)
        # parents first, so Gmail nests them (Helpdesk, Helpdesk/Status, ...)
        for name in sorted(wanted | {p for n in wanted for p in _parents(n)}, key=lambda n: (n.count("/"), n)):
            if name in self.label_ids:
                continue
            body: dict[str, Any] = {"name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
            colour = COLOURS.get(name[len(self.root) + 1 :])
            if colour:
                body["color"] = {"textColor": colour[0], "backgroundColor": colour[1]}
            created = self._execute(self.service.users().labels().create(userId="me", body=body))
            self.label_ids[name] = created["id"]
            self.label_names[created["id"]] = name
            done.append(f"created Gmail label {name}")
        return done

    def _names(self, label_ids: Iterable[str]) -> frozenset[str]:
        prefix = self.root + "/"
        return frozenset(n for n in (self.label_names.get(i, "") for i in label_ids) if n.startswith(prefix))

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None:
        ids = list(dict.fromkeys(refs))
        missing = [name for name in add if name not in self.label_ids]
        if missing:
            self.prepare(missing)
        body = {
            "addLabelIds": sorted(self.label_ids[n] for n in add),
            "removeLabelIds": sorted(self.label_ids[n] for n in remove if n in self.label_ids),
        }
        messages = self.service.users().messages()
        if len(ids) * 5 >= 50:  # batchModify costs 50 units for up to 1000 messages; modify costs 5 each
            for start in range(0, len(ids), 1000):
                self._execute(messages.batchModify(userId="me", body=dict(body, ids=ids[start : start + 1000])))
        else:
            self._batch([messages.modify(userId="me", id=i, body=body) for i in ids])

    # --- reading --------------------------------------------------------------------------------------

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes:
        users = self.service.users()
        history_id = cursor.get("historyId")
        self.own_sent |= set(cursor.get("own_sent", ()))  # sent by an earlier process, not yet seen in the history
        if history_id:
            found = self._history(history_id)
            if found is not None:
                added, label_changes, new_history = found
                return Changes(self._fetch(added), label_changes, self._cursor(new_history), expected=len(added))
            # the history id expired (404): a bounded re-sync since the last good pass; nothing is duplicated
            # because known Message-IDs are recognised, and label changes are read back for known messages
            last = cursor.get("last_pass")
            after = int(datetime.fromisoformat(last).timestamp()) - 3600 if last else int(since.timestamp())
            log.warning("Gmail history %s expired; re-syncing mail since %s", history_id, datetime.fromtimestamp(after, UTC))
            start = self._execute(users.getProfile(userId="me"))["historyId"]
            found_again = list(self._fetch(self._list(f"after:{after}")))  # bounded by the gap
            label_changes = [(m.ref, m.labels) for m in found_again]  # agents' changes during the gap
            return Changes(iter(found_again), label_changes, self._cursor(start))
        start = self._execute(users.getProfile(userId="me"))["historyId"]  # before listing: nothing slips through
        ids = self._list(self.gmail.initial_query) + self._list(f"in:sent after:{int(since.timestamp())}")
        log.info("first Gmail sync: %d message(s) to import", len(set(ids)))
        ids = list(dict.fromkeys(ids))
        return Changes(self._fetch(ids), [], self._cursor(start), expected=len(ids))

    def _list(self, query: str) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            response = self._execute(
                self.service.users().messages().list(userId="me", q=query, maxResults=500, pageToken=token)
            )
            ids += [m["id"] for m in response.get("messages", [])]
            token = response.get("nextPageToken")
            if not token:
                return ids

    def _cursor(self, history_id: str) -> dict[str, Any]:
        """The next cursor: the history id, and what we sent that the history has not shown yet (so a pass after
        sending costs one history.list, not a download of every message we sent, also in a new process)."""
        self._pending = {"historyId": history_id, "own_sent": sorted(self.own_sent)}
        return self._pending

    def _history(self, start: str) -> tuple[list[str], list[tuple[str, frozenset[str]]], str] | None:
        from googleapiclient.errors import HttpError

        added: dict[str, None] = {}
        changed: dict[str, list[str]] = {}
        token = None
        latest = start
        while True:
            request = self.service.users().history().list(
                userId="me",
                startHistoryId=start,
                historyTypes=["messageAdded", "labelAdded", "labelRemoved"],
                maxResults=500,
                pageToken=token,
            )
            try:
                response = self._call(request)
            except HttpError as exc:
                if exc.resp.status == 404:
                    return None
                raise self._error(exc) from None
            for record in response.get("history", []):
                for item in record.get("messagesAdded", []):
                    message = item["message"]
                    if message["id"] in self.own_sent:
                        self.own_sent.discard(message["id"])  # seen once: the history never shows it again
                    elif not SKIP_LABELS & set(message.get("labelIds", [])):
                        added[message["id"]] = None
                for key in ("labelsAdded", "labelsRemoved"):
                    for item in record.get(key, []):
                        message = item["message"]
                        changed[message["id"]] = message.get("labelIds", [])
            latest = response.get("historyId", latest)
            token = response.get("nextPageToken")
            if not token:
                break
        label_changes = [(i, self._names(labels)) for i, labels in changed.items() if i not in added]
        return list(added), label_changes, latest

    def _fetch(self, ids: list[str]) -> Iterator[RawMessage]:
        import base64

        messages = self.service.users().messages()
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            results = self._batch([messages.get(userId="me", id=i, format="raw") for i in chunk])
            for message in results:
                if message is None:
                    continue  # deleted meanwhile
                labels = set(message.get("labelIds", []))
                if labels & SKIP_LABELS or self.label_ids.get(records_label(self.root), "-") in labels:
                    continue  # (the daemon's own records are read by `records`, never as mail)
                raw = base64.urlsafe_b64decode(message["raw"] + "=" * (-len(message["raw"]) % 4))
                received = datetime.fromtimestamp(int(message.get("internalDate", "0")) / 1000, UTC)
                role = "sent" if "SENT" in labels and "INBOX" not in labels else "inbox"
                yield RawMessage(message["id"], role, raw, self._names(labels), received, message.get("threadId", ""))

    def _batch(self, requests: list[Any]) -> list[Any]:
        """Run requests in batches; sub-requests that hit rate limits or 5xx are tried again, alone, with backoff."""
        results: list[Any] = [None] * len(requests)
        pending = list(range(len(requests)))

        def attempt() -> None:
            pending[:] = self._batch_once(requests, pending, results)
            if pending:
                raise RateLimited(f"Gmail API kept refusing {len(pending)} request(s) (rate limit); will retry next pass")

        persist(attempt, passing=lambda exc: isinstance(exc, RateLimited), stop=self._stop, attempts=ATTEMPTS,
                first=1, most=32)
        return results

    def _batch_once(self, requests: list[Any], indexes: list[int], results: list[Any]) -> list[int]:
        """The requests at `indexes`, in batches of BATCH_SIZE; their answers go into `results` (None: not found).
        The indexes of those refused for now (rate limits, 5xx)."""
        from googleapiclient.errors import HttpError

        failed: list[int] = []
        errors: list[Any] = []
        for start in range(0, len(indexes), BATCH_SIZE):
            batch = self.service.new_batch_http_request()
            for index in indexes[start : start + BATCH_SIZE]:

                def callback(request_id: str, response: Any, exception: Any, index: int = index) -> None:
                    if exception is None:
                        results[index] = response
                    elif isinstance(exception, HttpError) and exception.resp.status == 404:
                        results[index] = None
                    elif isinstance(exception, HttpError) and _retryable(exception):
                        failed.append(index)
                    else:
                        errors.append(exception)

                batch.add(requests[index], callback=callback)
            try:
                batch.execute()
            except HttpError as exc:
                raise self._error(exc) from None
        if errors:
            raise self._error(errors[0])
        return failed

    # --- sending ----------------------------------------------------------------------------------

    def send(self, message: EmailMessage, labels: frozenset[str], thread_id: str = "") -> str:
        import base64

        body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(bytes(message)).decode()}
        if thread_id:
            body["threadId"] = thread_id
        sent = self._execute(self.service.users().messages().send(userId="me", body=body))
        self.own_sent.add(sent["id"])
        if self._pending is not None:  # saved with this pass's cursor: the next process skips it too
            self._pending["own_sent"].append(sent["id"])
        if labels:
            self.set_labels([sent["id"]], labels, frozenset())
        return sent["id"]

    def already_sent(self, message_id: str) -> bool:
        return bool(self._list(f"rfc822msgid:{message_id.strip('<>')}"))

    # --- the daemon's records (store/records.py) ------------------------------------------------------

    def keep_record(self, message: EmailMessage, folder: str) -> None:
        """messages.insert under the records label only: not in the inbox, not sent, no notification."""
        import base64

        if folder not in self.label_ids:
            self.prepare([folder])
        body = {"raw": base64.urlsafe_b64encode(bytes(message)).decode(), "labelIds": [self.label_ids[folder]]}
        inserted = self._execute(self.service.users().messages().insert(userId="me", body=body))
        self.own_sent.add(inserted["id"])  # not news for the next pass's history
        if self._pending is not None:  # nor for the next process's (see send)
            self._pending["own_sent"].append(inserted["id"])

    def records(self, folder: str) -> Iterator[bytes]:
        import base64

        label = self.label_ids.get(folder)
        if not label:
            return
        messages = self.service.users().messages()
        ids: list[str] = []
        token = None
        while True:
            response = self._execute(messages.list(userId="me", labelIds=[label], maxResults=500, pageToken=token))
            ids += [m["id"] for m in response.get("messages", [])]
            token = response.get("nextPageToken")
            if not token:
                break
        for start in range(0, len(ids), BATCH_SIZE):
            for message in self._batch([messages.get(userId="me", id=i, format="raw") for i in ids[start : start + BATCH_SIZE]]):
                if message is not None:
                    yield base64.urlsafe_b64decode(message["raw"] + "=" * (-len(message["raw"]) % 4))

    def stop_when(self, stop: threading.Event) -> None:
        """Once `stop` is set (SIGTERM) no call is tried again and a wait before the next try ends at once."""
        self._stop = stop

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Push when configured (Pub/Sub pull: wakes within seconds of new mail), else sleep until the next poll."""
        if stop is not None:
            self.stop_when(stop)
        stop = stop or threading.Event()
        if not self.gmail.pubsub_subscription or self.service is None:
            stop.wait(timeout)
            return
        self._watch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            try:
                if self._pull(min(deadline - time.monotonic(), PULL_SLICE)):
                    return
            except MailboxError as exc:
                log.warning("Pub/Sub pull failed (%s); polling instead", exc)
                stop.wait(max(0, deadline - time.monotonic()))
                return

    def _watch(self) -> None:
        if time.monotonic() - self.watched_at < WATCH_RENEW and self.watched_at:
            return
        body = {"topicName": self.gmail.pubsub_topic, "labelIds": ["INBOX", "SENT"], "labelFilterBehavior": "include"}
        self._execute(self.service.users().watch(userId="me", body=body))
        self.watched_at = time.monotonic()

    def _pull(self, seconds: float) -> bool:
        """One Pub/Sub pull; acknowledges what came. True when Gmail said something changed."""
        import requests
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(self._load_credentials())
        base = self.gmail.pubsub_endpoint.rstrip("/") + "/v1/" + self.gmail.pubsub_subscription
        try:
            response = session.post(base + ":pull", json={"maxMessages": 100}, timeout=max(seconds, 1))
        except requests.Timeout:
            return False
        except requests.RequestException as exc:
            raise MailboxError(f"cannot reach Pub/Sub: {exc}") from None
        if response.status_code != 200:
            raise MailboxError(f"Pub/Sub pull answered {response.status_code}: {response.text[:200]}")
        received = response.json().get("receivedMessages", [])
        if received:
            session.post(base + ":acknowledge", json={"ackIds": [m["ackId"] for m in received]}, timeout=30)
        return bool(received)


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _reason(exc: Any) -> str:
    try:
        data = json.loads(exc.content.decode())
        error = data.get("error", {})
        errors = error.get("errors") or [{}]
        return errors[0].get("reason") or error.get("status", "")
    except (ValueError, AttributeError):
        return ""


def _retryable(exc: Any) -> bool:
    """An HttpError that may pass: a rate limit or a server error."""
    status = exc.resp.status
    return status == 429 or status >= 500 or (status == 403 and _reason(exc) in ("rateLimitExceeded", "userRateLimitExceeded"))


def _passing(exc: BaseException) -> bool:
    """A failure of one call worth trying again at once: what Google's client retried with num_retries (rate
    limits, 5xx, a dropped or timed-out connection); anything else waits for the next pass."""
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        return _retryable(exc)
    return isinstance(exc, (ConnectionError, TimeoutError))
