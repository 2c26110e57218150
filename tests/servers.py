"""Real mail servers on loopback for tests: a private Dovecot (IMAP) and an aiosmtpd sink (SMTP).

Plain helpers, no pytest needed; the fixtures in ``tests/conftest.py`` wrap them.

    srv = DovecotServer(tmp_path)            # starts at once on 127.0.0.1:<free port>
    srv.add_user("alice", "secret")          # picked up without a restart
    srv.restart()                            # same port, same mail
    srv.stop()

    sink = SmtpSink(auth=("bot", "pw"))      # or SmtpSink() for no AUTH
    ...send to sink.host, sink.port...
    [msg] = sink.wait_for(1)                 # msg.mail_from, msg.rcpt_tos, msg.data, msg.message, msg.login
    sink.stop()
"""

from __future__ import annotations

import atexit
import email
import email.policy
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import clocks

DOVECOT_BIN = "/usr/sbin/dovecot"

# Unix socket paths (base_dir/...) must stay below ~108 bytes; with a longer tmpdir they move to /tmp.
_MAX_BASE_DIR_LEN = 70

_USER_RE = re.compile(r"[A-Za-z0-9_+@-][A-Za-z0-9._+@-]{0,63}")

_running: set = set()  # servers still running, stopped at interpreter exit if a teardown was missed


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        try:
            server.stop()
        except Exception:
            pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------------------------------


class DovecotError(RuntimeError):
    pass


class DovecotServer:
    """A private Dovecot IMAP server on 127.0.0.1, all state under ``tmpdir``; started by the constructor.

    Maildir storage, hierarchy separator ``/`` (as on Gmail), passwd-file users (PLAIN/LOGIN, no TLS),
    IDLE / CONDSTORE / QRESYNC / UIDPLUS / MOVE, custom keywords (PERMANENTFLAGS has ``\\*``), and a
    ``Sent`` folder with the ``\\Sent`` special-use flag created for every user.
    """

    host = "127.0.0.1"

    def __init__(self, tmpdir, *, start_timeout: float = 10.0, port_attempts: int = 5):
        self.dir = Path(tmpdir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.port_attempts = port_attempts
        self.port: int | None = None
        self.config_path = self.dir / "dovecot.conf"
        self.log_path = self.dir / "dovecot.log"
        self.stderr_path = self.dir / "dovecot.stderr"
        self.state_dir = self.dir / "state"
        # Where the unprivileged dovecot processes must reach: mail/ (mail user), users/ (auth) and
        # run/ (sockets). As root these go to a private dir in /tmp (see _prepare_dirs); as a normal
        # user into tmpdir, unless the socket paths would get too long.
        self._own_shared_dir = os.geteuid() == 0 or len(str(self.dir / "run")) > _MAX_BASE_DIR_LEN
        if self._own_shared_dir:
            self.shared_dir = Path(tempfile.mkdtemp(prefix="mailhelpdesk-dovecot-"))
        else:
            self.shared_dir = self.dir
        self.users_dir = self.shared_dir / "users"
        self.mail_dir = self.shared_dir / "mail"
        self.base_dir = self.shared_dir / "run"
        self._proc: subprocess.Popen | None = None
        self._stderr_file = None
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()
        # A greeting only our instance sends, so a foreign listener on the port is never taken for ours.
        self.greeting_token = "mailhelpdesk-test-" + secrets.token_hex(6)
        try:
            self._prepare_dirs()
            self.start()
        except BaseException:
            self.close()
            raise

    # ---- setup ---------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.state_dir.mkdir(exist_ok=True)
        for d in (self.base_dir, self.mail_dir, self.users_dir):
            d.mkdir(exist_ok=True)
        if self.shared_dir != self.dir:
            for name in ("mail", "users"):  # for people looking at tmpdir
                link = self.dir / name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(self.shared_dir / name)
        if os.geteuid() == 0:
            self._as_root = True
            self.internal_user = _first_existing_user("dovecot", "nobody")
            self.login_user = _first_existing_user("dovenull", "nobody")
            self.internal_group = grp.getgrgid(pwd.getpwnam(self.internal_user).pw_gid).gr_name
            self.mail_uid = pwd.getpwnam("nobody").pw_uid
            self.mail_gid = _first_existing_gid("nogroup", "nobody")
            # Mail processes run as nobody, auth as `dovecot`, login as `dovenull`: they must walk
            # down to their files. pytest's tmp dirs are 0700 (and pytest resets
            # /tmp/pytest-of-root to 0700 at every session start), so those files live in a private
            # dir under /tmp that others may search (0711) but not list.
            os.chmod(self.shared_dir, 0o711)
            _check_traversable(self.shared_dir)
            os.chmod(self.base_dir, 0o755)
            os.chown(self.mail_dir, self.mail_uid, self.mail_gid)
            os.chmod(self.mail_dir, 0o700)
            os.chown(self.users_dir, 0, grp.getgrnam(self.internal_group).gr_gid)
            os.chmod(self.users_dir, 0o750)
        else:
            self._as_root = False
            try:  # dovecot takes these settings by name
                self.internal_user = self.login_user = pwd.getpwuid(os.geteuid()).pw_name
                self.internal_group = grp.getgrgid(os.getegid()).gr_name
            except KeyError as exc:
                raise DovecotError(f"uid {os.geteuid()}/gid {os.getegid()} has no name in passwd/group: {exc}")
            self.mail_uid, self.mail_gid = os.geteuid(), os.getegid()
            os.chmod(self.users_dir, 0o700)

    def _write_config(self) -> None:
        self.config_path.write_text(
            f"""\
# Written by tests/servers.py: a private test instance, not a production config.
base_dir = {self.base_dir}
state_dir = {self.state_dir}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
log_path = {self.log_path}
login_greeting = {self.greeting_token}
default_internal_user = {self.internal_user}
default_internal_group = {self.internal_group}
default_login_user = {self.login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{self.mail_dir}/%u
mail_fsync = never
{self._import_environment()}namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_dir}/%u
}}
service anvil {{
  chroot =
  # No auth penalty (up to 15 s per failed login from 127.0.0.1), as Dovecot's docs describe.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )

    @staticmethod
    def _import_environment() -> str:
        """Dovecot clears its children's environment; under a moved clock (tests/clocks.py) they keep
        libfaketime, or they would stamp and search mail on the real day."""
        faketime = clocks.libfaketime_environment()
        if not faketime:
            return ""
        defaults = "TZ CORE_OUTOFMEM CORE_ERROR LISTEN_PID LISTEN_FDS NOTIFY_SOCKET"  # doveconf -d
        return f"import_environment = {defaults} {' '.join(faketime)}\n"

    # ---- users ---------------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a user; it can log in at once, no restart.

        Each user has its own passwd-file (users/<name>): Dovecot checks a passwd-file for changes at
        most once a second, so users appended to one shared file stay unknown for up to a second,
        while a file it has not opened yet is read on first use. (Changing the password of an
        existing user may take a second to be seen.)
        """
        if not _USER_RE.fullmatch(name):
            raise ValueError(f"unusable user name {name!r}: use letters, digits, '.', '_', '-', '@', '+'")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError(f"unusable password {password!r} for a passwd-file")
        with self._lock:
            self._users[name] = password
            path = self.users_dir / name
            tmp = self.users_dir / f".{name}.tmp"
            tmp.write_text(f"{name}:{{PLAIN}}{password}\n")
            if self._as_root:
                os.chown(tmp, 0, grp.getgrnam(self.internal_group).gr_gid)
                os.chmod(tmp, 0o640)
            else:
                os.chmod(tmp, 0o600)
            os.replace(tmp, path)  # atomic: dovecot never reads half a file

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    # ---- process control ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start on ``self.port`` if set (restart), else on a fresh free port (retried a few times)."""
        if self.running:
            raise DovecotError("dovecot is already running")
        fixed = self.port is not None
        attempts = 1 if fixed else self.port_attempts
        last_error = None
        for _ in range(attempts):
            if not fixed:
                self.port = free_port(self.host)
            try:
                self._start_once()
                return
            except DovecotError as exc:
                last_error = exc
                port_taken = "Address already in use" in str(exc)
                if fixed or not port_taken:
                    raise
        raise DovecotError(f"could not start dovecot after {attempts} ports; last error:\n{last_error}")

    def _start_once(self) -> None:
        self._write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._stderr_file = open(self.stderr_path, "ab")
        err_offset = self._stderr_file.tell()
        self._proc = subprocess.Popen(
            [DOVECOT_BIN, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr_file,
            stderr=self._stderr_file,
            start_new_session=True,  # own process group: stop() can sweep up children
            env=dict(os.environ, **clocks.libfaketime_environment()),
        )
        _running.add(self)
        deadline = time.monotonic() + self.start_timeout
        reason = "timed out"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                reason = f"dovecot exited with code {self._proc.returncode}"
                break
            if self._greeting_ok():
                return
            time.sleep(0.01)
        # Failed: collect what dovecot said (only the part written by this attempt) and clean up.
        self._kill()
        log = _read_from(self.log_path, log_offset) + _read_from(self.stderr_path, err_offset)
        tail = "\n".join(log.splitlines()[-30:])
        raise DovecotError(
            f"dovecot did not greet on {self.host}:{self.port} within {self.start_timeout:.0f}s ({reason}).\n"
            f"config: {self.config_path}\n--- dovecot log tail ---\n{tail}"
        )

    def _greeting_ok(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.settimeout(0.5)  # a foreign listener that never greets must not stall us
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                try:
                    s.sendall(b"x LOGOUT\r\n")
                except OSError:
                    pass
        except OSError:
            return False
        return data.startswith(b"* OK") and self.greeting_token.encode() in data

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate dovecot (and its children). Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # SIGTERM to the whole group: the master alone waits ~1 s for its children to go.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None:
            # Sweep our own process group (master + imap/auth/login children), by its id.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._proc = None
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        _running.discard(self)

    def restart(self) -> None:
        """Stop and start again on the SAME port with the same users and mail (a server restart)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """stop() and clean up; as root this deletes the mail (kept in /tmp/mailhelpdesk-dovecot-*)."""
        self.stop()
        if self._own_shared_dir:
            shutil.rmtree(self.shared_dir, ignore_errors=True)

    def log_text(self) -> str:
        """Everything dovecot logged so far (log file plus anything it wrote to stderr)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return text + err

    def __enter__(self) -> "DovecotServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DovecotServer {self.host}:{self.port} {state} dir={self.dir}>"


class ImapAccount:
    """One user on a DovecotServer: ``host``, ``port``, ``username``, ``password``, ``client()``, ``append()``."""

    def __init__(self, server: DovecotServer, username: str, password: str):
        self.server = server
        self.host = server.host
        self.port = server.port
        self.username = username
        self.password = password
        self._clients: list = []

    @classmethod
    def create(cls, server: DovecotServer, prefix: str = "u") -> "ImapAccount":
        """A fresh user with a unique name and a random password, added to ``server``."""
        account = cls(server, prefix + secrets.token_hex(5), secrets.token_urlsafe(12))
        server.add_user(account.username, account.password)
        return account

    def client(self, timeout: float | None = 30, **kwargs):
        """A new logged-in ``imapclient.IMAPClient(host, port=port, ssl=False)``; close() logs it out."""
        from imapclient import IMAPClient

        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout, **kwargs)
        self._clients.append(c)
        c.login(self.username, self.password)
        return c

    def append(self, folder: str, raw: bytes, flags=(), when: datetime | None = None) -> int | None:
        """APPEND ``raw`` to ``folder`` over a short-lived connection; return the new UID (APPENDUID)."""
        from imapclient import IMAPClient

        with IMAPClient(self.host, port=self.port, ssl=False, timeout=30) as c:
            c.login(self.username, self.password)
            resp = c.append(folder, raw, flags=flags, msg_time=when)
        m = re.search(rb"APPENDUID \d+ (\d+)", resp or b"")
        return int(m.group(1)) if m else None

    def close(self) -> None:
        """Log out every client made by client() (errors ignored: the server may be gone)."""
        for c in self._clients:
            try:
                c.logout()
            except Exception:
                try:
                    c.shutdown()
                except Exception:
                    pass
        self._clients.clear()

    def __repr__(self) -> str:
        return f"<ImapAccount {self.username}@{self.host}:{self.port}>"


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _first_existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise DovecotError(f"none of the users {names} exists")


def _first_existing_gid(*names: str) -> int:
    for name in names:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    raise DovecotError(f"none of the groups {names} exists")


def _check_traversable(path: Path) -> None:
    for p in path.parents:
        if not p.stat().st_mode & 0o001:
            raise DovecotError(f"{p} is not searchable by other users; dovecot's mail processes need it (TMPDIR?)")


# --------------------------------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    login: str | None = None  # SMTP AUTH user name of the session, None if it did not authenticate
    peer: tuple | None = field(default=None, repr=False)


class _SinkHandler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # AUTH required is enforced here, not with aiosmtpd's auth_required, which warns on every
        # connection when TLS is not required too.
        if self.sink.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        await self.sink._hold_while_limited()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        login = None
        if session.authenticated and session.auth_data is not None:
            raw = getattr(session.auth_data, "login", session.auth_data)
            login = raw.decode() if isinstance(raw, bytes) else str(raw)
        record = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(data),
            message=email.message_from_bytes(data, policy=email.policy.default),
            login=login,
            peer=session.peer,
        )
        self.sink._add(record)
        return "250 OK"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1:<free port> that keeps every message it receives.

    ``auth=(username, password)`` offers AUTH PLAIN/LOGIN without TLS; with ``auth_required`` (default
    when auth is given) MAIL FROM is refused (530) until the client has logged in.
    """

    host = "127.0.0.1"

    def __init__(self, auth: tuple[str, str] | None = None, *, auth_required: bool | None = None,
                 port_attempts: int = 5):
        from aiosmtpd.controller import Controller  # imported here so servers.py imports without aiosmtpd

        self.auth = auth
        self.auth_attempts: list[tuple[str, str, bool]] = []  # (mechanism, login, success)
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._limit: int | None = None  # see limit()
        self.held = 0  # sessions waiting at MAIL FROM because of the limit
        kwargs = {}
        if auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self.auth_required = auth is not None and (True if auth_required is None else auth_required)
        last_error = None
        for _ in range(port_attempts):
            port = free_port(self.host)
            controller = Controller(
                _SinkHandler(self), hostname=self.host, port=port,
                server_hostname="localhost",  # skip socket.getfqdn(), which may wait on DNS
                **kwargs,
            )
            try:
                controller.start()
            except OSError as exc:  # the port was taken between free_port() and bind
                last_error = exc
                try:
                    controller.stop(no_assert=True)
                except Exception:
                    pass
                continue
            self.controller = controller
            self.port = port
            break
        else:
            raise RuntimeError(f"SmtpSink could not bind a free port: {last_error}")

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = False
        login = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode(errors="replace")
            ok = (login, auth_data.password.decode(errors="replace")) == tuple(self.auth)
        with self._cond:
            self.auth_attempts.append((mechanism, login, ok))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def limit(self, count: int | None) -> None:
        """Stop answering MAIL FROM once ``count`` messages have arrived (None lifts it), as a stalled server would.

        A test that wants to stop a client in the middle of sending waits for ``held`` to become non-zero: however
        fast or slow the machine, the client is then blocked inside an SMTP transaction.
        """
        with self._cond:
            self._limit = count
            self._cond.notify_all()
            # sessions held by the old limit see the new one within milliseconds; wait, so `held` is about this one
            self._cond.wait_for(lambda: self.held == 0 or self._limited(), timeout=10)

    def wait_held(self, timeout: float = 30) -> bool:
        """Block until a client is held by the limit; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.held > 0, timeout)

    async def _hold_while_limited(self) -> None:
        import asyncio

        limited = self._limited
        if not limited():
            return
        with self._cond:
            self.held += 1
            self._cond.notify_all()
        try:
            while limited():
                await asyncio.sleep(0.005)
        finally:
            with self._cond:
                self.held -= 1
                self._cond.notify_all()

    def _limited(self) -> bool:
        return self._limit is not None and len(self._messages) >= self._limit

    def _add(self, record: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(record)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A copy of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self.auth_attempts.clear()

    def wait_for(self, count: int, timeout: float = 5) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; return them all. TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"SmtpSink got {len(self._messages)} message(s) within {timeout}s, expected {count}"
                )
            return list(self._messages)

    def stop(self) -> None:
        controller = getattr(self, "controller", None)
        if controller is not None:
            self.controller = None
            controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SmtpSink {self.host}:{self.port} messages={len(self._messages)}>"
