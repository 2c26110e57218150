"""Start in any SMTP outage (issue 16, item 4), against a real Dovecot and real sockets: a closed port (nothing
listens), a server that answers 421 at the greeting, one that accepts the connection and never says a word, and
an aiosmtpd sink that takes the port once the outage is over. `run` starts and works in all of them (tickets,
labels, state), the mail waits in the outbox and leaves once the server is back, exactly once, and `status` says
since when sending fails and when it recovered. Settings that are wrong (a password, TLS, a certificate) still
stop `run` at start with one line. No test reads the wall clock: daemons get theirs from `clocks`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import servers
from clocks import child_env, frozen_at, wait_for
from servers import SmtpSink, _SinkHandler, free_port
from test_check_errors import PASSWORD_ENV, SMTP_PASSWORD_ENV
from test_check_errors import write_config as check_config

from mailhelpdesk.app.cli import main
from mailhelpdesk.app.health import Health, Sending, summary
from mailhelpdesk.model import HistoryEvent, State, Ticket

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday; every clock here starts from it
OPEN = "Helpdesk/Status/Open"


def request(n: int, when: datetime) -> bytes:
    return (f"From: Customer {n} <customer{n}@c{n}.example>\r\nTo: support@shop.example\r\nSubject: Order {n} is late\r\n"
            f"Date: {when:%a, %d %b %Y %H:%M:%S +0000}\r\nMessage-ID: <outage-{n}@c{n}.example>\r\n\r\n"
            f"Where is order {n}?\r\n").encode()


def write_config(tmp_path: Path, account, smtp_port: int, **smtp) -> Path:
    """test_check_errors' config, for a daemon: polling every second, sent copies in Sent; SMTP on 127.0.0.1."""
    return check_config(tmp_path, account, {"host": "127.0.0.1", "port": smtp_port, **smtp},
                        imap={"sent_folder": "Sent", "idle": False},
                        helpdesk='[mailbox]\nbackend = "imap"\npoll_interval = 1')


def sink_on(port: int, handler_class=None) -> SmtpSink:
    """An aiosmtpd sink on this very port (the outage is over: the server is back where it was)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(servers, "free_port", lambda host="127.0.0.1": port)
        sink = SmtpSink(port_attempts=1)
    if handler_class is not None:
        sink.controller.handler = handler_class(sink)
    return sink


class QuietServer:
    """Accepts TCP connections and never says a word (a black hole behind a load balancer, a hung server), or,
    with `greeting`, says it and hangs up (421: busy). Counts the connections it was offered."""

    def __init__(self, greeting: bytes = b""):
        self.greeting = greeting
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.greeting:
                conn.sendall(self.greeting)
                conn.close()
            else:
                self._held.append(conn)

    def stop(self) -> None:
        self._stopped.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way: the port is free at once
        except OSError:
            pass
        self.listener.close()
        for conn in self._held:
            conn.close()
        self._thread.join(5)


def flags_of(account, message_id: str) -> set[str]:
    client = account.client()
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["HEADER", "Message-ID", message_id])
        return {f.decode() for uid in uids for f in client.fetch(uids, ["FLAGS"])[uid][b"FLAGS"]}
    finally:
        client.logout()


def acks(sink: SmtpSink) -> Counter:
    return Counter(str(m.message["Message-ID"]) for m in sink.messages
                   if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement")


def health(folder: Path) -> dict:
    try:
        return json.loads((folder / "state.json.health").read_text())
    except (OSError, ValueError):
        return {}


def cli(config: Path, *args: str, env: dict | None = None):
    result = CliRunner().invoke(main, [*args, "--config", str(config)], env=env or {})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"a traceback, not one line: {result.exception!r}\n{result.output}{result.stderr}")
    return result


# --- the done-criterion: `run` as a subprocess against a closed port that opens later ------------------------------


def test_run_started_against_a_closed_smtp_port_labels_new_mail_and_sends_once_the_port_opens(imap_account, tmp_path):
    port = free_port()  # nothing listens here: connection refused
    config = write_config(tmp_path, imap_account, port)
    started = time.monotonic()

    def clock() -> datetime:  # the daemon's clock: NOW at its start, ticking on in real seconds
        return NOW + timedelta(seconds=time.monotonic() - started)

    def status() -> tuple[int, str]:
        result = cli(config, "status", "--now", clock().isoformat())
        return result.exit_code, result.output

    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen([sys.executable, "-m", "mailhelpdesk.app.cli", "run", "-v", "--config", str(config)],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                              env=child_env(clock(), **{PASSWORD_ENV: imap_account.password}))
    sink = None
    try:
        assert wait_for(lambda: health(tmp_path).get("last_success") or daemon.poll() is not None, 60), log.read_text()
        assert daemon.poll() is None, "run starts in the outage:\n" + log.read_text()
        assert "starting anyway" in log.read_text() and f"127.0.0.1:{port}" in log.read_text()
        code, out = status()
        assert "SENDING FAILING since 2026-12-07" in out and "connection refused" in out, out

        delivered = time.monotonic()
        imap_account.append("INBOX", request(1, clock()), when=clock())
        assert wait_for(lambda: OPEN in flags_of(imap_account, "<outage-1@c1.example>"), 60), log.read_text()
        labelled = time.monotonic() - delivered
        assert wait_for(lambda: health(tmp_path).get("summary", {}).get("waiting") == 1, 60), log.read_text()
        code, out = status()
        assert "1 mail(s) waiting in the outbox" in out and "SENDING FAILING since" in out, out
        assert code == 0, "a short outage is no alarm for monitoring (exit 1 once it outlasts stale_after)"

        sink = sink_on(port)  # the server is back
        assert wait_for(lambda: sum(acks(sink).values()) >= 1, 120), log.read_text()
        for _ in range(2):  # two more passes: nothing goes twice
            before = health(tmp_path).get("last_success")
            assert wait_for(lambda: health(tmp_path).get("last_success") != before, 60), log.read_text()
        assert list(acks(sink).values()) == [1], "sent exactly once"
        assert [str(m.message["To"]) for m in sink.messages] == ["customer1@c1.example"]
        code, out = status()
        assert code == 0 and "sending recovered at 2026-12-07" in out and "SENDING FAILING" not in out, out
        assert "sending works again" in log.read_text()
        print(f"\nmeasured: new mail labelled {labelled:.1f} s after delivery while SMTP refused connections")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if sink is not None:
            sink.stop()


# --- `run --once` in each kind of outage -------------------------------------------------------------------------------


@pytest.fixture(params=["refused", "421 at the greeting", "silent"])
def outage(request):
    """A port where SMTP fails as a server that is down, busy or hung does."""
    if request.param == "refused":
        yield free_port(), None
        return
    server = QuietServer(b"421 4.3.2 Service not available, closing transmission channel\r\n"
                         if request.param.startswith("421") else b"")
    try:
        yield server.port, server
    finally:
        server.stop()


def test_run_once_in_an_outage_makes_tickets_labels_them_and_keeps_the_mail(imap_account, tmp_path, outage):
    port, server = outage
    # [smtp] timeout 120 s: a silent server would hold the run that long if it bounded the connection too
    config = write_config(tmp_path, imap_account, port, timeout=120)
    env = {PASSWORD_ENV: imap_account.password}
    with frozen_at(NOW):
        first = cli(config, "run", "--once", env=env)  # the first run: the empty mailbox, nothing to send
    assert first.exit_code == 0, first.output + first.stderr
    assert "starting anyway" in first.stderr and f"127.0.0.1:{port}" in first.stderr
    imap_account.append("INBOX", request(2, NOW + timedelta(minutes=1)), when=NOW + timedelta(minutes=1))
    began = time.monotonic()
    with frozen_at(NOW + timedelta(minutes=2)):
        second = cli(config, "run", "--once", env=env)
    took = time.monotonic() - began
    assert second.exit_code == 0, second.output + second.stderr
    assert "1 mail(s) wait in the outbox" in second.output and "sending fails" in second.output, second.output
    assert OPEN in flags_of(imap_account, "<outage-2@c2.example>"), "labelled in the outage"
    assert took < 60, f"held {took:.0f} s: the connection and greeting are bounded by seconds, not [smtp] timeout"
    if server is not None:
        assert server.connections >= 1, "the server was tried"
    sink = sink_on(port) if server is None else None  # refused: the server comes back on its port
    if sink is not None:
        try:
            with frozen_at(NOW + timedelta(minutes=3)):
                third = cli(config, "run", "--once", env=env)
            assert third.exit_code == 0 and list(acks(sink).values()) == [1], third.output + third.stderr
            with frozen_at(NOW + timedelta(minutes=4)):
                cli(config, "run", "--once", env=env)
            assert list(acks(sink).values()) == [1], "never twice"
        finally:
            sink.stop()


@pytest.fixture
def tls_server(tmp_path):
    """An SMTPS server (implicit TLS) whose certificate, from a CA the client trusts, names another host."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)  # valid on any test day
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("smtp.other.example")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("smtp.other.example")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(_SinkHandler(None), hostname="127.0.0.1", port=port, ssl_context=context,
                            server_hostname="localhost")
    controller.start()
    try:
        yield port, tmp_path / "ca.pem"
    finally:
        controller.stop()


def test_settings_that_are_wrong_still_stop_run_with_one_line(imap_account, smtp_sink, tmp_path, tls_server):
    """Not an outage: what only a change of the config fixes stops `run` at start, one line, exit 2."""
    env = {PASSWORD_ENV: imap_account.password, SMTP_PASSWORD_ENV: "wrong-password"}
    guarded = SmtpSink(auth=("bot", "right-password"))
    tls_port, ca = tls_server
    login = {"username": "bot", "password_env": SMTP_PASSWORD_ENV}
    cases = [
        (guarded.port, {"security": "none", **login}, {}, "SMTP login failed for bot"),  # 535
        (smtp_sink.port, {"security": "ssl"}, {}, "[smtp] security"),  # TLS against a plaintext server
        (tls_port, {"security": "ssl"}, {"SSL_CERT_FILE": str(ca)}, "is the name on the server's certificate"),
    ]
    try:
        for port, smtp, extra, words in cases:
            config = write_config(tmp_path, imap_account, port, **smtp)
            for args in (("--once",), ()):
                with frozen_at(NOW):
                    result = cli(config, "run", *args, env={**env, **extra})
                # (the in-process aiosmtpd logs the garbage it is sent; ours is the one error line)
                lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
                assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], (words, result.stderr)
                assert "Traceback" not in result.stderr
                assert "wrong-password" not in result.output + result.stderr
                assert not (tmp_path / "state.json").exists(), "stopped before the first pass"
    finally:
        guarded.stop()


# --- a silent server holds no pass -----------------------------------------------------------------------------------


def test_a_silent_smtp_server_holds_no_pass_and_the_mail_goes_once_it_is_back(imap_account, tmp_path):
    """A server that accepts the connection and never answers, with [smtp] timeout = 300 s: new mail is still
    labelled within seconds (the greeting is bounded by seconds, and after a failure the passes leave the outbox
    alone for a while); when a real server takes the port the mail leaves once."""
    from mailhelpdesk.config import config_from_dict
    from mailhelpdesk.app.daemon import Helpdesk, serve

    silent = QuietServer()
    port = silent.port
    data = {"helpdesk": {"address": "support@shop.example", "state_file": str(tmp_path / "state.json")},
            "mailbox": {"backend": "imap", "poll_interval": 1},
            "imap": {"host": imap_account.host, "port": imap_account.port, "security": "none", "idle": False,
                     "username": imap_account.username, "password": imap_account.password, "sent_folder": "Sent"},
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 300}}
    config = config_from_dict(data, tmp_path / "mailhelpdesk.toml")
    started = time.monotonic()
    desk = Helpdesk(config, clock=lambda: NOW + timedelta(seconds=time.monotonic() - started))
    passes: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(desk, lambda report: passes.append(silent.connections), stop),
                              daemon=True)
    thread.start()
    sink = None
    try:
        assert wait_for(lambda: passes, 60), "the first pass (an empty mailbox)"
        latencies = []
        for n in range(3, 6):  # three customers, one after the other, while the server stays silent
            delivered = time.monotonic()
            imap_account.append("INBOX", request(n, desk.clock()), when=desk.clock())
            assert wait_for(lambda: OPEN in flags_of(imap_account, f"<outage-{n}@c{n}.example>"), 60)
            latencies.append(time.monotonic() - delivered)
        assert silent.connections >= 1, "sending was tried"
        assert desk.sending.failing_since is not None and "did not answer within 10 s" in desk.sending.reason
        waiting = [r for r in desk.state.sent.values() if not r.done]
        assert sorted(r.to for r in waiting) == [f"customer{n}@c{n}.example" for n in range(3, 6)]
        assert len(passes) > silent.connections + 2, ("between tries, passes leave the outbox alone", passes)
        silent.stop()
        sink = sink_on(port)
        assert wait_for(lambda: sum(acks(sink).values()) == 3, 120), desk.sending
        before = len(passes)
        assert wait_for(lambda: len(passes) >= before + 2, 60)
        assert sorted(acks(sink).values()) == [1, 1, 1], "each once"
        assert desk.sending.failing_since is None and desk.sending.recovered_at is not None
        print(f"\nmeasured: with a silent SMTP server new mail was labelled after "
              f"{', '.join(f'{s:.1f}' for s in latencies)} s; {silent.connections} SMTP connection(s) in {len(passes)} passes")
        assert max(latencies) < 60, latencies  # generous: the old way held each pass [smtp] timeout (300 s)
    finally:
        stop.set()
        thread.join(30)
        silent.stop()
        if sink is not None:
            sink.stop()
    assert not thread.is_alive()


# --- the backoff, pass by pass (an injected clock) -----------------------------------------------------------------


class Busy(_SinkHandler):
    """421 at MAIL FROM while `busy`: the server is up and turns every mail away for now."""

    busy = True
    tries = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        type(self).tries += 1
        if type(self).busy:
            return "421 4.3.2 Service not available, closing transmission channel"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)


def test_after_a_server_failure_passes_leave_the_outbox_alone_until_the_backoff_ends(imap_account, smtp_sink, tmp_path):
    from backends import ImapBackend

    smtp_sink.controller.handler = Busy(smtp_sink)
    Busy.busy, Busy.tries = True, 0
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    clock = [NOW - timedelta(hours=1)]
    desk = backend.helpdesk(lambda: clock[0])
    desk.run_pass()  # a running helpdesk: what comes next is new mail
    backend.deliver(request(7, NOW - timedelta(minutes=1)), NOW - timedelta(minutes=1))
    clock[0] = NOW
    desk.run_pass()
    tried = Busy.tries
    assert tried >= 1 and desk.sending.failing_since == NOW and "421" in desk.sending.reason
    waiting = sorted(str(r.kind) for r in desk.state.sent.values() if not r.done)
    assert "acknowledgement" in waiting
    clock[0] = NOW + timedelta(seconds=5)
    desk.run_pass()  # backing off: the server is not asked
    assert Busy.tries == tried and desk.sending.failures == 1
    clock[0] = NOW + timedelta(seconds=11)
    desk.run_pass()  # tried again, busy again: the wait doubles
    assert Busy.tries > tried and desk.sending.failures == 2
    assert desk.sending.retry_at == NOW + timedelta(seconds=11 + 20)
    assert desk.sending.failing_since == NOW, "failing since the first failure"
    Busy.busy = False
    clock[0] = NOW + timedelta(seconds=20)
    desk.run_pass()
    assert not acks(smtp_sink), "still backing off"
    clock[0] = NOW + timedelta(seconds=32)
    desk.run_pass()
    assert list(acks(smtp_sink).values()) == [1] and all(r.done for r in desk.state.sent.values())
    assert desk.sending == Sending(recovered_at=NOW + timedelta(seconds=32), failed_from=NOW)
    clock[0] = NOW + timedelta(minutes=5)
    desk.run_pass()
    assert list(acks(smtp_sink).values()) == [1]
    desk.close()
    restarted = backend.helpdesk(lambda: clock[0])  # the health file keeps the last outage for `status`
    assert restarted.sending.recovered_at == NOW + timedelta(seconds=32) and restarted.sending.failing_since is None


# --- what `status` says ------------------------------------------------------------------------------------------------


def local_config(tmp_path: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text('[helpdesk]\naddress = "s@shop.example"\nstate_file = "state.json"\ntimezone = "UTC"\n'
                      '[mailbox]\nbackend = "local"\nstale_after = 900\n')
    return config


def test_status_says_since_when_sending_fails_what_waits_and_when_it_recovered(tmp_path):
    config = local_config(tmp_path)
    health = Health(tmp_path / "state.json")
    failing = Sending().failed(NOW, "nothing accepts connections at SMTP server 127.0.0.1:2525 (connection refused)")
    figures = dict(summary(State(), NOW), waiting=12)
    health.write(last_success=(NOW + timedelta(minutes=4)).isoformat(), summary=figures, sending=failing.as_dict())
    with frozen_at(NOW + timedelta(minutes=5)):
        result = cli(config, "status")
    assert ("SENDING FAILING since 2026-12-07 10:00 UTC: nothing accepts connections at SMTP server 127.0.0.1:2525 "
            "(connection refused); 12 mail(s) waiting in the outbox") in result.output, result.output
    assert result.exit_code == 0, "five minutes of outage: said, not yet an alarm"
    health.write(last_success=(NOW + timedelta(minutes=59)).isoformat())
    with frozen_at(NOW + timedelta(hours=1)):
        result = cli(config, "status")
    assert result.exit_code == 1 and "SENDING FAILING since" in result.output, "an hour: longer than stale_after"
    health.write(last_success=(NOW + timedelta(hours=2)).isoformat(),
                 sending=failing.worked(NOW + timedelta(hours=2)).as_dict())
    with frozen_at(NOW + timedelta(hours=2, minutes=1)):
        result = cli(config, "status")
    assert result.exit_code == 0 and "SENDING FAILING" not in result.output
    assert "sending recovered at 2026-12-07 12:00 UTC after failing since 2026-12-07 10:00 UTC" in result.output
    with frozen_at(NOW + timedelta(days=2)):
        assert "recovered" not in cli(config, "status").output, "a day later it is history"


def ticket(n: int, *events: tuple[datetime, HistoryEvent]) -> Ticket:
    t = Ticket(f"HD-{n}", n, f"c{n}@x.example", f"request {n}", NOW - timedelta(days=10))
    for at, what in events:
        t = t.log(at, what, "per-domain ceiling reached")
    return t


def test_status_counts_the_acknowledgements_withheld_in_the_last_seven_days(tmp_path):
    state = State()
    for t in (ticket(1, (NOW - timedelta(days=1), HistoryEvent.ACK_WITHHELD)),
              ticket(2, (NOW - timedelta(days=6), HistoryEvent.ACK_SKIPPED)),  # a state from before issue 16
              ticket(3, (NOW - timedelta(days=8), HistoryEvent.ACK_WITHHELD)),  # too long ago
              ticket(4, (NOW - timedelta(hours=1), HistoryEvent.ACKNOWLEDGED)),
              ticket(5, (NOW - timedelta(days=2), HistoryEvent.ACK_WITHHELD), (NOW, HistoryEvent.ACK_WITHHELD))):
        state.tickets[t.key] = t
    assert summary(state, NOW)["acks_withheld_7d"] == 3
    config = local_config(tmp_path)
    health = Health(tmp_path / "state.json")
    health.write(last_success=NOW.isoformat(), summary=summary(state, NOW))
    with frozen_at(NOW + timedelta(seconds=5)):
        output = cli(config, "status").output
    assert ("acknowledgements withheld (7 days): 3; the latest: HD-1, HD-2, HD-5 (`mailhelpdesk tickets KEY` says why)"
            in output), output
    health.write(summary=summary(State(), NOW))
    with frozen_at(NOW + timedelta(seconds=5)):
        assert "withheld" not in cli(config, "status").output, "only when there are some"


def test_check_still_reports_an_smtp_outage_in_one_line(imap_account, tmp_path, outage):
    port, _ = outage
    config = write_config(tmp_path, imap_account, port)
    result = cli(config, "check", env={PASSWORD_ENV: imap_account.password})
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert "all good" not in result.output
