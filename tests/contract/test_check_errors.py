"""Every setup mistake is one line that names the fix, and exit code 2: `check` and `run` against real servers
(Dovecot, the aiosmtpd sink) and a closed loopback port, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocks import wait_for
from servers import SmtpSink, free_port

from mailhelpdesk.app.cli import main

PASSWORD_ENV = "CHECK_ERRORS_PASSWORD"
SMTP_PASSWORD_ENV = "CHECK_ERRORS_SMTP_PASSWORD"


def write_config(tmp_path: Path, imap_account, smtp: dict, imap: dict | None = None, helpdesk: str = "") -> Path:
    imap = {"host": imap_account.host, "port": imap_account.port, "security": "none", **(imap or {})}
    smtp = {"security": "none", "timeout": 10, **smtp}

    def section(values: dict) -> str:
        return "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {str(v).lower()}" if isinstance(v, bool)
                         else f"{k} = {v}" for k, v in values.items())

    path = tmp_path / "mailhelpdesk.toml"
    path.write_text(f"""
[helpdesk]
address = "support@shop.example"
state_file = "state.json"
{helpdesk}
[imap]
{section(imap)}
username = "{imap_account.username}"
password_env = "{PASSWORD_ENV}"
timeout = 10
[smtp]
{section(smtp)}
""")
    return path


def check(config: Path, imap_account, *args: str, command: str = "check", smtp_password: str = "") -> tuple[int, str, str]:
    env = {PASSWORD_ENV: imap_account.password, SMTP_PASSWORD_ENV: smtp_password}
    result = CliRunner().invoke(main, [command, *args, "--config", str(config)], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"a traceback, not one line: {result.exception!r}\n{result.output}{result.stderr}")
    return result.exit_code, result.output, result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr must be exactly one line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def test_a_working_setup_still_checks_clean(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port})
    code, out, err = check(config, imap_account)
    assert code == 0, out + err
    assert err == "" and "templates: " in out and "all good" in out


def test_a_closed_smtp_port_names_host_and_port(imap_account, tmp_path):
    port = free_port()
    config = write_config(tmp_path, imap_account, {"host": "127.0.0.1", "port": port})
    code, out, err = check(config, imap_account)
    line = one_line(err)
    assert code == 2
    assert f"127.0.0.1:{port}" in line and "[smtp] host" in line and "port" in line
    assert "all good" not in out


def test_an_unresolvable_smtp_host_names_the_host_key(imap_account, tmp_path):
    config = write_config(tmp_path, imap_account, {"host": "smtp.mailhelpdesk.invalid", "port": 25})
    code, _, err = check(config, imap_account)
    line = one_line(err)
    assert code == 2 and "smtp.mailhelpdesk.invalid" in line and "[smtp] host" in line


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_against_a_plaintext_smtp_server_names_the_security_key(imap_account, smtp_sink, tmp_path, security):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port, "security": security})
    code, _, err = check(config, imap_account)
    line = one_line(err)
    assert code == 2 and "[smtp] security" in line and f"{smtp_sink.host}:{smtp_sink.port}" in line
    assert smtp_sink.messages == []


def test_a_password_for_a_server_that_offers_no_auth(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port,
                                                   "username": "bot", "password_env": SMTP_PASSWORD_ENV})
    code, _, err = check(config, imap_account, smtp_password="secret")
    line = one_line(err)
    assert code == 2 and "AUTH" in line and "[smtp] username" in line
    assert "secret" not in err


def test_a_wrong_smtp_password_names_the_login_and_never_the_password(imap_account, tmp_path):
    sink = SmtpSink(auth=("bot", "right-password"))
    try:
        config = write_config(tmp_path, imap_account, {"host": sink.host, "port": sink.port,
                                                       "username": "bot", "password_env": SMTP_PASSWORD_ENV})
        code, out, err = check(config, imap_account, smtp_password="wrong-password")
        line = one_line(err)
        assert code == 2 and "SMTP login failed for bot" in line and "[smtp] password" in line
        assert "wrong-password" not in out + err
        code, out, err = check(config, imap_account, smtp_password="right-password")
        assert code == 0 and "accepts us as bot" in out, out + err
    finally:
        sink.stop()


def test_a_closed_imap_port_names_host_and_port(imap_account, smtp_sink, tmp_path):
    port = free_port()
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port}, imap={"port": port})
    code, out, err = check(config, imap_account)
    line = one_line(err)
    assert code == 2 and f"127.0.0.1:{port}" in line and "[imap] host" in line
    assert "accepts us" in out  # SMTP is still checked: every problem at once


def test_a_wrong_imap_password_is_one_line_with_exit_2(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port})
    env = {PASSWORD_ENV: "not-the-password"}
    result = CliRunner().invoke(main, ["check", "--config", str(config)], env=env)
    line = one_line(result.stderr)
    assert result.exit_code == 2 and "IMAP login failed" in line and "[imap] password" in line
    assert "not-the-password" not in result.output + result.stderr


def test_a_broken_user_template_names_file_and_line_and_the_rest_is_checked(imap_account, smtp_sink, tmp_path):
    own = tmp_path / "my-templates" / "en"
    own.mkdir(parents=True)
    (own / "acknowledgement.txt.j2").write_text("Subject: [{{ ticket.key }}] we got it\n\nHello,\n{% if ticket %}\nno end\n")
    (own / "reminder.txt.j2").write_text("Subject: {{ ticket.key }} waits\n\n\nWaited {{ waited }} for {{ ticket.nosuchfield }}.\n")
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port},
                          helpdesk='templates_dir = "my-templates"')
    code, out, err = check(config, imap_account)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 2, err
    syntax, undefined = sorted(lines)
    assert f"{own / 'acknowledgement.txt.j2'}, line " in syntax and "endif" in syntax
    assert f"{own / 'reminder.txt.j2'}, line 4" in undefined and "nosuchfield" in undefined
    assert "accepts us" in out and "all good" not in out  # the servers were still checked


def test_a_template_that_names_a_missing_variable_is_found_by_check(imap_account, smtp_sink, tmp_path):
    own = tmp_path / "tpl" / "en"
    own.mkdir(parents=True)
    (own / "assigned.txt.j2").write_text("Subject: {{ ticket.key }} is yours\n\n{{ agnt.name }}\n")
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port},
                          helpdesk='templates_dir = "tpl"')
    code, _, err = check(config, imap_account)
    line = one_line(err)
    assert code == 2 and f"{own / 'assigned.txt.j2'}, line 3" in line and "agnt" in line


@pytest.mark.parametrize("where", ["missing/folder/state.json", "a-file/state.json"])
def test_a_state_file_that_cannot_be_written_is_one_line(imap_account, smtp_sink, tmp_path, where):
    (tmp_path / "a-file").write_text("in the way")
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port})
    config.write_text(config.read_text().replace('state_file = "state.json"', f'state_file = "{where}"'))
    for command, args in (("check", ()), ("run", ("--once",)), ("run", ())):
        code, _, err = check(config, imap_account, *args, command=command)
        line = one_line(err)
        assert code == 2 and "[helpdesk] state_file" in line and str(tmp_path / where) in line, (command, line)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_state_folder_is_one_line(imap_account, smtp_sink, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port})
        config.write_text(config.read_text().replace('state_file = "state.json"', 'state_file = "ro/state.json"'))
        code, _, err = check(config, imap_account, "--once", command="run")
        assert code == 2 and "[helpdesk] state_file" in one_line(err)
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the daemon as another user")
def test_a_read_only_state_folder_is_one_line_for_a_daemon_run_as_nobody(imap_account, smtp_sink):
    """The daemon as a service runs it: a user who may not write the state folder (root may write anywhere, so
    the test, run as root in CI, starts the real CLI as `nobody`)."""
    import shutil
    import tempfile

    import mailhelpdesk

    home = Path(tempfile.mkdtemp(prefix="mailhelpdesk-ro-"))
    try:
        home.chmod(0o755)
        # a copy of the package nobody can read (the checkout may be in root's home)
        shutil.copytree(Path(mailhelpdesk.__file__).parent, home / "lib" / "mailhelpdesk")
        env = {**os.environ, PASSWORD_ENV: imap_account.password, "HOME": str(home), "PYTHONPATH": str(home / "lib")}
        probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                                "import mailhelpdesk.app.cli"], capture_output=True, text=True, env=env)
        if probe.returncode != 0:
            pytest.skip(f"`nobody` cannot run this Python: {probe.stderr.strip()[-200:]}")
        (home / "ro").mkdir(mode=0o755)  # owned by root: read-only for nobody
        config = write_config(home, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port})
        config.write_text(config.read_text().replace('state_file = "state.json"', 'state_file = "ro/state.json"'))
        config.chmod(0o644)
        done = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "mailhelpdesk.app.cli",
             "run", "--once", "--config", str(config)],
            capture_output=True, text=True, timeout=120, cwd=home, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        line = one_line(done.stderr)
        assert "[helpdesk] state_file" in line and str(home / "ro") in line and "Permission denied" in line, line
        assert list((home / "ro").iterdir()) == [], "nothing written, nothing half-written"
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("args", [("--once",), ()])
def test_run_stops_at_start_up_with_one_line_for_smtp_and_imap_mistakes(imap_account, smtp_sink, tmp_path, args):
    """A setting to fix stops `run`. An SMTP server that is down is no mistake: `run` starts (test_smtp_outage.py)."""
    closed = free_port()
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port, "security": "starttls"})
    code, _, err = check(config, imap_account, *args, command="run")
    assert code == 2 and "STARTTLS" in one_line(err) and "[smtp] security" in err
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port}, imap={"port": closed})
    code, _, err = check(config, imap_account, *args, command="run")
    assert code == 2 and f"127.0.0.1:{closed}" in one_line(err) and "[imap]" in err


def test_check_in_a_subprocess_prints_one_line_on_stderr(imap_account, tmp_path):
    """The real entry point, as a user runs it: no traceback reaches the terminal."""
    config = write_config(tmp_path, imap_account, {"host": "127.0.0.1", "port": free_port(), "security": "ssl"})
    env = dict(os.environ, **{PASSWORD_ENV: imap_account.password})
    done = subprocess.run([sys.executable, "-m", "mailhelpdesk.app.cli", "check", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "[smtp]" in one_line(done.stderr)


@pytest.mark.parametrize("imap, key", [({"security": "ssl"}, "[imap] security"),
                                       ({"host": "imap.mailhelpdesk.invalid"}, "[imap] host")])
def test_imap_tls_against_plaintext_and_an_unknown_imap_host(imap_account, smtp_sink, tmp_path, imap, key):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port}, imap=imap)
    code, _, err = check(config, imap_account)
    assert code == 2 and key in one_line(err)


def test_a_missing_imap_folder_is_named(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, {"host": smtp_sink.host, "port": smtp_sink.port}, imap={"folder": "Inbox-typo"})
    code, _, err = check(config, imap_account)
    assert code == 2 and "[imap] folder 'Inbox-typo' does not exist" in one_line(err)


def test_a_daemon_that_runs_keeps_retrying_what_stops_it_at_start_up(imap_account, smtp_sink, tmp_path):
    """Start-up mistakes stop `run`; the same errors later (the server went away) are retried, never fatal."""
    import dataclasses
    import threading

    from backends import ImapBackend

    from mailhelpdesk.app.daemon import Helpdesk, serve

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    closed = dataclasses.replace(backend.config.imap, port=free_port(), timeout=5)
    helpdesk = Helpdesk(dataclasses.replace(backend.config, imap=closed))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(helpdesk, lambda report: None, stop), daemon=True)
    thread.start()
    try:
        def health_when(condition) -> dict:
            wait_for(lambda: condition(helpdesk.health.read()), 20)
            return helpdesk.health.read()  # as it is now: the same error, or a later one

        first = health_when(lambda h: "connection refused" in str(h.get("last_error")))
        # at least one more attempt: the loop records each failure (progress, not a guess at the backoff)
        again = health_when(lambda h: h.get("last_error_at") not in (None, first.get("last_error_at")))
        assert again.get("last_error_at") != first.get("last_error_at"), "the daemon tried again"
        assert thread.is_alive() and "[imap] host and port" in again["last_error"]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
