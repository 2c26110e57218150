"""Why a connection to a mail server failed, in one line that names the setting to fix. Pure: an exception in,
words out (the adapters decide whether to stop or to retry)."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

NETWORK_DOWN = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def ports_hint(server: Any) -> str:
    ports = server.DEFAULT_PORTS
    return f'security = "ssl" is usually port {ports["ssl"]}, "starttls" port {ports["starttls"]}'


def is_outage(exc: BaseException) -> bool:
    """The server is not there or busy for now (down, restarting, silent, a full queue, a network or DNS server
    that does not answer): worth waiting for. Not an outage: what only a change of settings fixes (a host name
    that does not exist, TLS that fails or a certificate for another name, a refused login, a 5xx answer)."""
    if isinstance(exc, socket.gaierror):
        return exc.errno == socket.EAI_AGAIN  # the resolver cannot answer now; EAI_NONAME: no such name
    if isinstance(exc, ssl.SSLError):
        return False
    if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError, EOFError)):
        return True  # refused, reset, aborted: nothing listens, or it restarts; a timeout: silent
    if type(exc).__name__ == "SMTPServerDisconnected":
        return True
    code = getattr(exc, "smtp_code", None)
    if isinstance(code, int):
        return 400 <= code < 500  # 421 "service not available", 45x: busy, try later
    return isinstance(exc, OSError) and exc.errno in NETWORK_DOWN


def connect_problem(exc: BaseException, service: str, section: str, server: Any, waited: float | None = None) -> str:
    """One line for a failure to connect, start TLS or greet: what happened at host:port, and which key to check.
    `server` is an ImapConfig or SmtpConfig; nothing of the password is ever in the text. `waited`: the timeout
    that ran out, when it was not `server.timeout` (SMTP's shorter one for the connection and greeting)."""
    where = f"{service} server {server.host}:{server.effective_port}"
    if isinstance(exc, socket.gaierror):
        return f"{service} server name {server.host!r} cannot be resolved ({exc.strerror or exc}): check [{section}] host"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {where} (connection refused): check [{section}] host and port ({ports_hint(server)})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return (f"{where} did not answer within {waited or server.timeout:g} s: check [{section}] host, port and security "
                f"({ports_hint(server)}), and that no firewall is in the way")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{where} shows a TLS certificate that cannot be trusted ({exc.verify_message or exc.reason}): "
                f"check that [{section}] host is the name on the server's certificate")
    if isinstance(exc, ssl.SSLError):
        if exc.reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE") or "wrong version" in str(exc):
            return (f'{where} does not speak TLS on this port: check [{section}] security (now "{server.security}") '
                    f"and port ({ports_hint(server)})")
        return f"TLS with {where} failed ({exc.reason or exc}): check [{section}] security and port ({ports_hint(server)})"
    if isinstance(exc, (ConnectionResetError, EOFError)) or type(exc).__name__ in ("SMTPServerDisconnected", "abort"):
        return (f"{where} closed the connection ({exc or 'no greeting'}): check [{section}] port and security "
                f"({ports_hint(server)})")
    code = getattr(exc, "smtp_code", None)
    if isinstance(code, int) and 400 <= code < 500:
        text = getattr(exc, "smtp_error", b"")
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{where} is busy or down for now (it answered {code} {' '.join(text.split())})"
    if isinstance(exc, OSError):
        return f"cannot reach {where} ({exc.strerror or exc}): check [{section}] host and port"
    return f"{where} refused us ({type(exc).__name__}: {exc}): check [{section}] host, port and security"
