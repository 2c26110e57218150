"""`mailhelpdesk auth` through click's CliRunner: bad OAuth client files are one line (exit 2); the headless
copy-and-paste flow exchanges a real authorisation code with a local HTTP server standing in for Google's token
endpoint (`token_uri` in the client file points at it), and the token is written with mode 0600."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import socket
import stat
import sys
import threading
import urllib.parse
import urllib.request
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from mailhelpdesk.app.cli import main
from mailhelpdesk.errors import AuthError

SCOPE = "https://www.googleapis.com/auth/gmail.modify"
CLIENT_ID = "123-test.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-test-secret"
AUTH_URI = "https://accounts.google.com/o/oauth2/auth"  # only printed, never contacted


class FakeGoogle:
    """Google's side of the installed-app flow: `consent()` is the user allowing access in a browser (it reads the
    authorisation URL and answers the redirect address with a fresh code); `/token` is the token endpoint, which
    checks the code, the redirect_uri it was issued for, the client and the PKCE verifier, as Google does
    (developers.google.com/identity/protocols/oauth2/native-app, "Exchange authorization code")."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}  # code -> the authorisation request it answers
        self.token_requests: list[dict[str, str]] = []
        self.granted_scope: str | None = None  # None: what was asked
        google = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                status, answer = google.token(self.path, self.headers.get("Authorization", ""), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.token_uri = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def consent(self, auth_url: str) -> str:
        """The browser's address after the user allowed access: redirect_uri?state=...&code=...&scope=..."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query))
        code = "4/0A" + secrets.token_urlsafe(24)
        self.codes[code] = query
        answer = urllib.parse.urlencode({"state": query["state"], "code": code, "scope": query["scope"]})
        return f"{query['redirect_uri']}?{answer}"

    def token(self, path: str, authorization: str, body: str) -> tuple[int, dict[str, Any]]:
        form = dict(urllib.parse.parse_qsl(body))
        self.token_requests.append(form)
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):  # requests-oauthlib sends the client as HTTP Basic by default
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, client_secret = urllib.parse.unquote(client_id), urllib.parse.unquote(client_secret)
        if path != "/token" or (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        request = self.codes.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or request is None:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        if form.get("redirect_uri") != request["redirect_uri"] or request["client_id"] != client_id:
            return 400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        verified = challenge.rstrip(b"=").decode() == request["code_challenge"]
        if request.get("code_challenge_method") != "S256" or not verified:
            return 400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
        return 200, {
            "access_token": "ya29.test-access-token",
            "expires_in": 3599,
            "refresh_token": "1//test-refresh-token",
            "scope": request["scope"] if self.granted_scope is None else self.granted_scope,
            "token_type": "Bearer",
        }


class Typist(io.RawIOBase):
    """The person at the terminal: when the command asks, reads what it printed so far and types `answer(printed)`."""

    def __init__(self, answer: Callable[[str], str]):
        self.answer = answer
        self.typed: bytes | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not len(buffer):
            return 0
        if self.typed is None:
            sys.stdout.flush()
            printed = sys.stdout.buffer.getvalue().decode()  # CliRunner's captured stdout (a BytesIO)
            self.typed = (self.answer(printed) + "\n").encode()
        n = min(len(buffer), len(self.typed))
        buffer[:n] = self.typed[:n]
        self.typed = self.typed[n:]
        return n


def typing(answer: Callable[[str], str]) -> io.BufferedReader:
    return io.BufferedReader(Typist(answer))


def printed_url(printed: str) -> str:
    urls = [word for word in printed.split() if word.startswith(AUTH_URI + "?")]
    assert len(urls) == 1, printed
    return urls[0]


@pytest.fixture
def google(monkeypatch):
    # oauthlib refuses plain-http endpoints unless told otherwise (its documented switch); only the test's
    # token endpoint is http, Google's is https
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    fake = FakeGoogle()
    try:
        yield fake
    finally:
        fake.close()


def write_setup(tmp_path: Path, client: Any, extra: str = "") -> Path:
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text(
        '[helpdesk]\naddress = "help@example.com"\n\n[mailbox]\nbackend = "gmail"\n\n'
        f'[gmail]\ncredentials_file = "credentials.json"\ntoken_file = "secret/token.json"\n{extra}'
    )
    if client is not None:
        (tmp_path / "credentials.json").write_text(client if isinstance(client, str) else json.dumps(client))
    return config


def desktop_client(token_uri: str) -> dict[str, Any]:
    """The shape Google Cloud Console downloads for an OAuth client of type 'Desktop app'."""
    return {
        "installed": {
            "client_id": CLIENT_ID,
            "project_id": "helpdesk-test",
            "auth_uri": AUTH_URI,
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["http://localhost"],
        }
    }


def auth(config: Path, *args: str, input: Any = None):
    return CliRunner().invoke(main, ["auth", "--config", str(config), *args], input=input)


def token_file(tmp_path: Path) -> Path:
    return tmp_path / "secret" / "token.json"


# --- bad client files: one line each, exit 2 -----------------------------------------------------------------

SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "helpdesk-test",
    "private_key_id": "abc",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    "client_email": "helpdesk@helpdesk-test.iam.gserviceaccount.com",
    "client_id": "1234567890",
    "token_uri": "https://oauth2.googleapis.com/token",
}
WEB_CLIENT = {"web": dict(desktop_client("https://oauth2.googleapis.com/token")["installed"], redirect_uris=[])}


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (None, ["not found", "'Desktop app'"]),
        ("", ["not JSON", "'Desktop app'"]),
        ('{"installed": {"client_id": ', ["not JSON", "'Desktop app'"]),
        (b"\xff\xfe\x00garbage".decode("latin-1"), ["not JSON"]),
        (SERVICE_ACCOUNT, ["service-account key", "service_account_file", "delegated_user", "'Desktop app'"]),
        (WEB_CLIENT, ["'Web application'", "'Desktop app'"]),
        ({"client_id": CLIENT_ID}, ['no "installed" section', "'Desktop app'"]),
        (["installed"], ["not an OAuth client file", "'Desktop app'"]),
        ({"installed": {"client_id": CLIENT_ID}}, ["lacks client_secret, auth_uri, token_uri"]),
    ],
    ids=["missing", "empty", "truncated", "binary", "service-account", "web", "no-installed", "list", "incomplete"],
)
@pytest.mark.parametrize("mode", [[], ["--no-browser"]], ids=["default", "no-browser"])
def test_a_bad_client_file_is_one_line_exit_2(tmp_path, client, expected, mode):
    result = auth(write_setup(tmp_path, client), *mode)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(tmp_path / "credentials.json") in lines[0]
    for phrase in expected:
        assert phrase in lines[0]
    assert not token_file(tmp_path).exists()


def test_a_client_file_that_is_a_directory_is_one_line(tmp_path):
    config = write_setup(tmp_path, None)
    (tmp_path / "credentials.json").mkdir()
    result = auth(config, "--no-browser")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "cannot read the OAuth client file" in result.stderr


def test_with_a_service_account_configured_auth_says_it_is_not_needed(tmp_path):
    extra = 'service_account_file = "credentials.json"\ndelegated_user = "help@example.com"\n'
    config = write_setup(tmp_path, SERVICE_ACCOUNT, extra)
    result = auth(config, "--no-browser")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "needs no `auth`" in result.stderr


# --- the headless flow: print the URL, paste the address back -----------------------------------------------


def assert_token_saved(tmp_path: Path, google: FakeGoogle, printed: str) -> None:
    path = token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["token"] == "ya29.test-access-token"
    assert saved["refresh_token"] == "1//test-refresh-token"
    assert saved["client_id"] == CLIENT_ID and saved["client_secret"] == CLIENT_SECRET
    assert saved["token_uri"] == google.token_uri
    assert saved["scopes"] == [SCOPE]
    assert not path.with_name("token.json.tmp").exists()
    # one exchange, with the redirect_uri of the printed URL
    [request] = google.token_requests
    asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(printed_url(printed)).query))
    assert request["redirect_uri"] == asked["redirect_uri"]
    assert request["grant_type"] == "authorization_code"


def test_no_browser_prints_the_url_and_takes_the_pasted_address(tmp_path, google):
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    # a token file left over with loose permissions and a stale temporary file: both end up 0600 / gone
    token_file(tmp_path).parent.mkdir()
    token_file(tmp_path).write_text("{}")
    token_file(tmp_path).with_name("token.json.tmp").write_text("stale")
    os.chmod(token_file(tmp_path).with_name("token.json.tmp"), 0o644)
    old_umask = os.umask(0)  # the file's mode must not depend on the umask
    try:
        result = auth(config, "--no-browser", input=typing(lambda printed: google.consent(printed_url(printed))))
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output + repr(result.exception)
    url = printed_url(result.stdout)
    asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert asked["scope"] == SCOPE  # gmail.modify only
    assert asked["client_id"] == CLIENT_ID
    assert asked["access_type"] == "offline" and asked["prompt"] == "consent"
    assert asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"].startswith("http://localhost:") and asked["redirect_uri"].endswith("/")
    assert "fails to load" in result.stdout and "expected" in result.stdout
    assert "token saved to" in result.stdout
    assert result.stderr == ""
    assert_token_saved(tmp_path, google, result.stdout)


def test_pasting_just_the_code_works_too(tmp_path, google):
    config = write_setup(tmp_path, desktop_client(google.token_uri))

    def paste_code(printed: str) -> str:
        address = google.consent(printed_url(printed))
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))["code"]

    result = auth(config, "--no-browser", input=typing(paste_code))
    assert result.exit_code == 0, result.output
    assert_token_saved(tmp_path, google, result.stdout)


def test_a_code_pasted_still_url_encoded_works(tmp_path, google):
    config = write_setup(tmp_path, desktop_client(google.token_uri))

    def paste_encoded_code(printed: str) -> str:
        address = google.consent(printed_url(printed))
        return urllib.parse.quote(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))["code"], safe="")

    result = auth(config, "--no-browser", input=typing(paste_encoded_code))
    assert result.exit_code == 0, result.output
    assert_token_saved(tmp_path, google, result.stdout)


def test_an_address_copied_without_its_scheme_works_too(tmp_path, google):
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    paste = typing(lambda printed: google.consent(printed_url(printed)).removeprefix("http://") + "#")
    result = auth(config, "--no-browser", input=paste)
    assert result.exit_code == 0, result.output
    assert_token_saved(tmp_path, google, result.stdout)


def test_an_address_with_another_state_is_refused_in_one_line(tmp_path, google):
    config = write_setup(tmp_path, desktop_client(google.token_uri))

    def paste_other_attempt(printed: str) -> str:
        address = google.consent(printed_url(printed))
        return address.replace("state=", "state=other")

    result = auth(config, "--no-browser", input=typing(paste_other_attempt))
    assert result.exit_code == AuthError.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "state does not match" in lines[0]
    assert google.token_requests == []  # the code was never sent
    assert not token_file(tmp_path).exists()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda google, printed: "", "nothing was pasted"),
        (lambda google, printed: "4/0Aexpired-or-used", "Google refused the authorisation (invalid_grant"),
        (
            lambda google, printed: google.consent(printed_url(printed)).split("&code=")[0].split("?")[0]
            + "?error=access_denied&state="
            + dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(printed_url(printed)).query))["state"],
            "Google answered access_denied",
        ),
    ],
    ids=["empty", "refused-code", "access-denied"],
)
def test_paste_problems_are_one_line(tmp_path, google, answer, expected):
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    result = auth(config, "--no-browser", input=typing(lambda printed: answer(google, printed)))
    assert result.exit_code == AuthError.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not token_file(tmp_path).exists()


def test_a_scope_left_unticked_is_one_line(tmp_path, google):
    google.granted_scope = "openid"
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    result = auth(config, "--no-browser", input=typing(lambda printed: google.consent(printed_url(printed))))
    assert result.exit_code == AuthError.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "tick every box" in lines[0], result.stderr
    assert not token_file(tmp_path).exists()


def test_an_unreachable_token_endpoint_is_one_line(tmp_path, google):
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        config = write_setup(tmp_path, desktop_client(f"http://127.0.0.1:{closed.getsockname()[1]}/token"))
        result = auth(config, "--no-browser", input=typing(lambda printed: google.consent(printed_url(printed))))
    assert result.exit_code == AuthError.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot reach Google's token endpoint" in lines[0], result.stderr
    assert not token_file(tmp_path).exists()


# --- the default mode -------------------------------------------------------------------------------------


def test_without_a_browser_the_default_mode_falls_back_to_pasting(tmp_path, google, monkeypatch):
    def no_browser(using: str | None = None) -> webbrowser.BaseBrowser:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    result = auth(config, input=typing(lambda printed: google.consent(printed_url(printed))))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "No web browser can be opened" in result.stdout
    assert_token_saved(tmp_path, google, result.stdout)


def test_a_text_mode_browser_counts_as_none(tmp_path, google, monkeypatch):
    monkeypatch.setattr(webbrowser, "get", lambda using=None: webbrowser.GenericBrowser("lynx"))
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    result = auth(config, input=typing(lambda printed: google.consent(printed_url(printed))))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "No web browser can be opened" in result.stdout
    assert_token_saved(tmp_path, google, result.stdout)


def test_with_a_browser_google_redirects_to_a_local_server(tmp_path, google, monkeypatch):
    """The desktop case: the browser opens the URL, Google sends it to http://localhost:PORT/ where the
    command listens (google-auth-oauthlib's run_local_server), and the code is exchanged without pasting."""
    pages: list[bytes] = []

    class Browser(webbrowser.BaseBrowser):
        def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
            address = google.consent(url)

            def follow_redirect() -> None:
                with urllib.request.urlopen(address, timeout=30) as response:
                    pages.append(response.read())

            self.thread = threading.Thread(target=follow_redirect, daemon=True)
            self.thread.start()
            return True

    browser = Browser("test-browser")
    monkeypatch.setattr(webbrowser, "get", lambda using=None: browser)
    config = write_setup(tmp_path, desktop_client(google.token_uri))
    result = auth(config, input="")
    browser.thread.join(30)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert b"mailhelpdesk is authorised" in pages[0]
    assert_token_saved(tmp_path, google, result.stdout)
