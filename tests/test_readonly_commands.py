"""Commands that only read the state need no password; `--config` goes before or after the command;
`digest --send` works while the daemon runs; the systemd and Docker recipes keep the state in a writable place."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from clocks import wait_for

from mailhelpdesk.config import load_config
from mailhelpdesk.app.daemon import Helpdesk, InstanceLock, serve
from mailhelpdesk.backends.local import LocalMailbox
from test_outputs import NOW, at, build_helpdesk, cli, mail

ROOT = Path(__file__).parent.parent
UNSET = "MAILHELPDESK_TEST_UNSET_PASSWORD"


@pytest.fixture(autouse=True)
def no_password(monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.delenv("MAILHELPDESK_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


@pytest.mark.parametrize("command", [["tickets"], ["tickets", "HD-1"], ["tickets", "--ignored"], ["status"],
                                     ["report"], ["report", "--format", "json"], ["digest"], ["digest", "--print"]])
def test_read_only_commands_work_without_the_password(tmp_path, command):
    config = build_helpdesk(tmp_path)
    result = cli(*command, "--config", str(config), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() and "Traceback" not in result.output


def test_client_setup_works_without_the_password(tmp_path):
    config = build_helpdesk(tmp_path)  # an IMAP helpdesk whose password variable is not set
    result = cli("client-setup", "thunderbird", "--config", str(config))
    assert result.exit_code == 0 and 'user_pref("mailnews.tags.helpdesk/status/open.tag"' in result.output


@pytest.mark.parametrize("command", [["run", "--once"], ["check"], ["digest", "--send"]])
def test_commands_that_use_the_mailbox_still_need_it(tmp_path, command):
    config = build_helpdesk(tmp_path)
    result = cli(*command, "--config", str(config))
    assert result.exit_code == 2
    assert f"${UNSET}, which is not set" in result.stderr and str(config) in result.stderr


def test_read_only_loading_still_checks_how_the_secret_is_given(tmp_path):
    config = build_helpdesk(tmp_path)
    config.write_text(config.read_text().replace('password_env = "MAILHELPDESK_TEST_UNSET_PASSWORD"\n[smtp]',
                                                 'password_env = "X"\npassword = "y"\n[smtp]'))
    result = cli("tickets", "--config", str(config))
    assert result.exit_code == 2 and "give only one of password, password_env, password_file" in result.stderr


def test_config_goes_before_or_after_the_command_and_after_wins(tmp_path, monkeypatch):
    config = build_helpdesk(tmp_path)
    missing = str(tmp_path / "missing.toml")
    before = cli("--config", str(config), "tickets", "--now", NOW.isoformat())
    assert before.exit_code == 0 and "HD-1" in before.output
    after_wins = cli("--config", missing, "tickets", "--config", str(config), "--now", NOW.isoformat())
    assert after_wins.exit_code == 0 and "HD-1" in after_wins.output
    after_wins_too = cli("--config", str(config), "tickets", "--config", missing)
    assert after_wins_too.exit_code == 2 and missing in after_wins_too.stderr
    monkeypatch.setenv("MAILHELPDESK_CONFIG", missing)
    assert cli("tickets").exit_code == 2  # the variable is the default...
    assert cli("tickets", "--config", str(config)).exit_code == 0  # ...and an option beats it
    assert cli("--config", str(config), "tickets").exit_code == 0
    assert "--config" in cli("--help").output and "--config" in cli("run", "--help").output


# --- digest --send ------------------------------------------------------------------------------

LOCAL = """
[helpdesk]
address = "support@shop.example"
timezone = "America/New_York"
state_file = "state.json"
[mailbox]
backend = "local"
poll_interval = 1
[sla]
escalate_to = ["lead@shop.example"]
[[agents]]
name = "Alice"
email = "alice@shop.example"
"""


def local_helpdesk(folder: Path) -> Path:
    path = folder / "mailhelpdesk.toml"
    path.write_text(LOCAL)
    box = LocalMailbox(folder / "mailbox")
    box.connect()
    box.deliver("INBOX", mail(at(25, 9), "<q1@c.example>", "anna@c.example", "Export fails"), at(25, 9))
    return path


def sent_digests(folder: Path) -> list[str]:
    return sorted(p.read_text(errors="replace").split("\nTo: ", 1)[1].split("\n", 1)[0].strip()
                  for p in (folder / "mailbox" / "Sent").glob("*.eml") if "digest" in p.read_text(errors="replace").lower())


def test_digest_send_while_the_daemon_runs_asks_the_daemon_and_each_goes_once(tmp_path):
    path = local_helpdesk(tmp_path)
    config = load_config(path)
    state_file = config.resolve(config.helpdesk.state_file)
    stop = threading.Event()
    helpdesk = Helpdesk(config, clock=lambda: NOW)

    def daemon() -> None:
        with InstanceLock(state_file):
            serve(helpdesk, lambda report: None, stop)

    thread = threading.Thread(target=daemon, daemon=True)
    thread.start()
    try:
        wait_for(lambda: Path(str(state_file) + ".health").exists(), 20)
        first = cli("digest", "--send", "--config", str(path), "--now", NOW.isoformat())
        assert first.exit_code == 0, first.output + first.stderr
        assert "the daemon is running" in first.output
        assert "sent: digest to alice@shop.example" in first.output
        assert "sent: lead digest to lead@shop.example" in first.output
        again = cli("digest", "--send", "--config", str(path), "--now", NOW.isoformat())
        assert "already sent today: digest to alice@shop.example" in again.output, again.output
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    assert sent_digests(tmp_path) == ["alice@shop.example", "lead@shop.example"]  # each once
    assert not Path(str(state_file) + ".digest-request").exists()


def test_digest_send_without_a_daemon_sends_itself_once_a_day(tmp_path):
    path = local_helpdesk(tmp_path)
    from clocks import frozen_at

    with frozen_at(NOW):  # the pass on the test's day, not the machine's
        assert cli("run", "--once", "--config", str(path)).exit_code == 0
    first = cli("digest", "--send", "--config", str(path), "--now", NOW.isoformat())
    assert first.exit_code == 0 and "sent: digest to alice@shop.example" in first.output, first.output
    again = cli("digest", "--send", "--config", str(path), "--now", NOW.isoformat())
    assert "already sent today: digest to alice@shop.example" in again.output
    assert sent_digests(tmp_path) == ["alice@shop.example", "lead@shop.example"]


def test_an_old_digest_request_is_dropped_not_sent_days_later(tmp_path):
    from mailhelpdesk.app import digest_request
    from mailhelpdesk.core.engine import Engine
    from mailhelpdesk.model import State

    config = load_config(local_helpdesk(tmp_path))
    state_file = config.resolve(config.helpdesk.state_file)
    digest_request.ask(state_file, at(20, 9))
    assert digest_request.take(Engine(config), State(), NOW, state_file) == []
    assert not digest_request.request_path(state_file).exists()


# --- where the state lives: systemd, Docker, unwritable folders ------------------------------------


def unit() -> dict[str, str]:
    text = (ROOT / "deploy" / "mailhelpdesk.service").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_systemd_unit_keeps_the_state_in_its_state_directory_and_the_config_read_only():
    settings = unit()
    assert settings["StateDirectory"] == "mailhelpdesk" and settings["ProtectSystem"] == "strict"
    assert settings["ConfigurationDirectory"] == "mailhelpdesk"
    assert "/etc" not in settings.get("ReadWritePaths", "")
    assert settings["Environment"] == "MAILHELPDESK_CONFIG=/etc/mailhelpdesk/mailhelpdesk.toml"
    assert "mailhelpdesk run" in settings["ExecStart"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "STATE_DIRECTORY=/data" in dockerfile


def test_with_state_directory_set_a_relative_state_file_lands_there(tmp_path, monkeypatch):
    etc, state_dir = tmp_path / "etc", tmp_path / "var-lib"
    etc.mkdir()
    state_dir.mkdir()
    (tmp_path / "mailbox").mkdir()
    path = etc / "mailhelpdesk.toml"
    path.write_text(LOCAL + f'[local]\npath = "{tmp_path / "mailbox"}"\n')
    LocalMailbox(tmp_path / "mailbox").connect()
    monkeypatch.setenv("STATE_DIRECTORY", str(state_dir))
    result = cli("run", "--once", "--config", str(path))
    assert result.exit_code == 0, result.output + result.stderr
    assert (state_dir / "state.json").exists() and (state_dir / "state.json.lock").exists()
    assert sorted(p.name for p in etc.iterdir()) == ["mailhelpdesk.toml"]  # nothing written next to the config
    assert cli("status", "--config", str(path), "--now", NOW.isoformat()).output.startswith("last successful pass: 20")
    monkeypatch.delenv("STATE_DIRECTORY")  # a shell without the daemon's environment: it says so, not "never"
    lost = cli("status", "--config", str(path), "--now", NOW.isoformat())
    assert lost.exit_code == 1 and lost.output.startswith(f"no state file at {etc / 'state.json'}"), lost.output
    monkeypatch.setenv("STATE_DIRECTORY", str(state_dir))
    monkeypatch.setenv("STATE_DIRECTORY", f"{state_dir}:{tmp_path / 'second'}")  # systemd lists several with ':'
    assert load_config(path).helpdesk.state_file == str(state_dir / "state.json")
    path.write_text(LOCAL.replace('"state.json"', f'"{tmp_path / "abs.json"}"'))
    assert load_config(path).helpdesk.state_file == str(tmp_path / "abs.json")  # an absolute path is kept


def test_an_unwritable_state_location_is_one_line_not_a_traceback(tmp_path):
    path = local_helpdesk(tmp_path)
    (tmp_path / "blocked").write_text("a file where the state folder should be")
    path.write_text(path.read_text().replace('"state.json"', '"blocked/state.json"'))
    for command in (["run", "--once"], ["run"], ["digest", "--send"], ["rebuild"]):
        result = cli(*command, "--config", str(path))
        assert result.exit_code == 2, command
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "blocked" in lines[0], (command, lines)
        assert "state_file" in lines[0] and "Traceback" not in result.output + result.stderr
