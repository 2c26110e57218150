"""The command line through click's CliRunner: config errors, init, demo, run, tickets."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from clocks import frozen_at

from mailhelpdesk.app.cli import main
from mailhelpdesk.config import load_config

ROOT = Path(__file__).parent.parent
MINIMAL = """
[helpdesk]
address = "support@shop.example"
state_file = "state.json"
[mailbox]
backend = "local"
"""


def run(*args, env=None, input=None):
    result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    return result


@pytest.mark.parametrize(
    "text, message",
    [
        (MINIMAL + "[imap]\nprot = 993\n", "unknown key 'imap.prot'"),
        (MINIMAL + "[imap]\nport = \"993\"\n", "imap.port must be an integer, got str '993'"),
        (MINIMAL.replace('address = "support@shop.example"\n', ""), "missing required key 'helpdesk.address'"),
        (MINIMAL + "[assignment]\nstrategy = \"random\"\n", "assignment.strategy must be one of"),
        (MINIMAL.replace('"local"', '"imap"'), "[imap] host is required"),
        (MINIMAL + "[helpdesk.x]\n", "unknown key 'helpdesk.x'"),
        ("[helpdesk\n", "not valid TOML"),
        (MINIMAL.replace('state_file = "state.json"', 'timezone = "Mars/Olympus"'), "not a known IANA time zone"),
        (MINIMAL + "[[priority.rules]]\nsubject = \"(unclosed\"\npriority = \"high\"\n", "not a valid regular expression"),
        (MINIMAL + "[[priority.rules]]\nsubject = \"x\"\npriority = \"extreme\"\n", "must be one of 'urgent'"),
        (MINIMAL + "[sla]\nfirst_response = { normal = \"soon\" }\n", "[sla] normal"),
    ],
)
def test_a_broken_config_gives_one_clear_line_and_exit_code_2(tmp_path, text, message):
    path = tmp_path / "mailhelpdesk.toml"
    path.write_text(text)
    result = run("tickets", "--config", str(path))
    assert result.exit_code == 2
    assert message in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_missing_config_says_how_to_make_one(tmp_path):
    result = run("check", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "mailhelpdesk init" in result.stderr


def test_config_path_comes_from_the_environment(tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text(MINIMAL)
    result = run("tickets", env={"MAILHELPDESK_CONFIG": str(path)})
    assert result.exit_code == 0 and "no tickets yet" in result.output


def test_example_config_documents_every_key_and_is_valid(monkeypatch):
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "x")
    config = load_config(ROOT / "config.example.toml")
    text = (ROOT / "config.example.toml").read_text()
    from dataclasses import fields

    for section in ("helpdesk", "mailbox", "local", "imap", "smtp", "gmail", "assignment", "autoreply", "priority", "sla",
                    "commands"):
        for f in fields(getattr(config, section)):
            if f.name != "password":
                assert f"{f.name} =" in text or f"[[{section}.{f.name}]]" in text, f"{section}.{f.name} is not documented"
    assert config.priority.effective_rules[1].sender_domains == ["bigcustomer.example"]


def test_password_file_and_inline_secret(tmp_path):
    secret = tmp_path / "imap.secret"
    secret.write_text("s3cret-pw-41\n")
    path = tmp_path / "c.toml"
    path.write_text(MINIMAL + '[imap]\npassword_file = "imap.secret"\n[smtp]\npassword = "inl1ne-pw-77"\n')
    config = load_config(path)
    assert config.imap.password == "s3cret-pw-41" and config.smtp.password == "inl1ne-pw-77"
    assert "s3cret-pw-41" not in repr(config) and "inl1ne-pw-77" not in repr(config)


def test_init_writes_a_config_that_loads(tmp_path, monkeypatch):
    path = tmp_path / "mailhelpdesk.toml"
    answers = "\n".join(["help@acme.example", "Acme Support", "", "", "", "", "", "", "", "", "", "", "Europe/Berlin",
                         "Alice Smith <alice@acme.example>, bob@acme.example"]) + "\n"
    result = run("init", "--config", str(path), input=answers)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "x")  # the config names the variable; the user sets it later
    config = load_config(path)
    assert config.imap.host == "imap.acme.example" and config.smtp.host == "smtp.acme.example"
    assert [(a.name, a.email) for a in config.agents] == [("Alice Smith", "alice@acme.example"), ("Bob", "bob@acme.example")]
    assert run("init", "--config", str(path), input=answers).exit_code == 2  # never overwrites silently


def test_demo_shows_tickets_acknowledgements_and_what_it_ignored(tmp_path):
    result = run("demo", "--dir", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "HD-1" in out and "urgent" in out
    assert "acknowledgement" in out
    assert "Left unanswered on purpose" in out
    for reason in ("Auto-Submitted", "mailing list", "delivery report (bounce)"):
        assert reason in out
    config = tmp_path / "demo" / "mailhelpdesk.toml"
    listed = json.loads(run("tickets", "--json", "--config", str(config)).output)
    assert {"key", "status", "priority", "assignee", "customer", "subject", "created_at", "first_response_at",
            "message_ids", "due_at"} <= set(listed[0])
    assert any(t["status"] == "pending" and t["first_response_at"] for t in listed), "the agent's reply was seen"
    assert all(t["customer"] for t in listed)
    state = tmp_path / "demo" / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    shown = run("tickets", "HD-1", "--config", str(config)).output
    assert "history:" in shown and "created" in shown


def test_run_once_and_dry_run_on_a_local_mailbox(tmp_path):
    from mailhelpdesk.backends.local import LocalMailbox

    (tmp_path / "c.toml").write_text(MINIMAL)
    box = LocalMailbox(tmp_path / "mailbox")
    box.connect()
    eml = (ROOT / "tests" / "fixtures" / "eml" / "urgent.eml").read_bytes()
    box.deliver("INBOX", eml)
    with frozen_at(datetime(2026, 11, 20, 10, 30, tzinfo=UTC)):  # the mail's day, whatever the machine's
        dry = run("run", "--dry-run", "--config", str(tmp_path / "c.toml"))
        assert dry.exit_code == 0 and "would send acknowledgement" in dry.output and "nothing was changed" in dry.output
        assert not (tmp_path / "state.json").exists() and box.labels_of("INBOX/000001.eml") == frozenset()
        once = run("run", "--once", "--config", str(tmp_path / "c.toml"))
        assert once.exit_code == 0 and "send acknowledgement for HD-1" in once.output
        assert "Helpdesk/Status/Open" in box.labels_of("INBOX/000001.eml")
        again = run("run", "--once", "--config", str(tmp_path / "c.toml"))
        assert "send" not in again.output and "0 action(s)" in again.output


def test_a_dry_run_takes_no_lock_leaves_none_and_previews_beside_a_running_daemon(tmp_path):
    from mailhelpdesk.app.daemon import InstanceLock
    from mailhelpdesk.backends.local import LocalMailbox

    (tmp_path / "c.toml").write_text(MINIMAL)
    box = LocalMailbox(tmp_path / "mailbox")
    box.connect()
    box.deliver("INBOX", (ROOT / "tests" / "fixtures" / "eml" / "urgent.eml").read_bytes())
    lock = tmp_path / "state.json.lock"
    with frozen_at(datetime(2026, 11, 20, 10, 30, tzinfo=UTC)):
        dry = run("run", "--dry-run", "--config", str(tmp_path / "c.toml"))
        assert dry.exit_code == 0 and not lock.exists(), dry.output  # nothing left behind
        with InstanceLock(tmp_path / "state.json"):  # a daemon runs on this state
            beside = run("run", "--dry-run", "--config", str(tmp_path / "c.toml"))
            assert beside.exit_code == 0 and "would send acknowledgement" in beside.output, beside.output
            refused = run("run", "--once", "--config", str(tmp_path / "c.toml"))
            assert refused.exit_code != 0 and "already running" in refused.output  # a real pass still waits its turn


def test_the_state_file_is_tinydb_and_round_trips(tmp_path):
    """Written in TinyDB's format (TinyDB opens it, with documents named by key) and read back to equal objects."""
    from tinydb import Query

    from mailhelpdesk.store.state import SCHEMA_VERSION, StateDB, Store

    result = run("demo", "--dir", str(tmp_path / "demo"))
    assert result.exit_code == 0
    path = tmp_path / "demo" / "state.json"
    state = Store(path).load()
    Store(path).compact(state)  # the journal folded into the file
    db = StateDB(path)
    assert len(db.table("tickets")) == len(state.tickets) and db.table("meta").get(doc_id="1")["schema_version"] == SCHEMA_VERSION
    assert {d.doc_id for d in db.table("tickets").search(Query().status == "open")} == {
        k for k, t in state.tickets.items() if t.status == "open"}
    db.close()
    copy = tmp_path / "copy.json"
    Store(copy).save(state)
    again = Store(copy).load()
    assert again.tickets == state.tickets and again.sent == state.sent and again.index == state.index
    assert list(again.tickets) == sorted(again.tickets, key=lambda k: again.tickets[k].number)
