"""What the read-only commands print, against a state built by the real engine with a fixed clock: the ticket
list (overdue first, marked; no silent truncation), its filters, one ticket, ignored mail with its time zone,
`status`; and the daemon's output (each action once; every line JSON with --log-format json)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from clocks import child_env, wait_for

from click.testing import CliRunner

from mailhelpdesk.app.cli import main
from mailhelpdesk.config import load_config
from mailhelpdesk.app.daemon import Health
from mailhelpdesk.store.state import Store
from test_engine import Desk

NY = ZoneInfo("America/New_York")
NOW = datetime(2027, 1, 25, 12, 0, tzinfo=NY)  # Monday noon
LONG_SUBJECT = "Our whole warehouse integration stopped syncing after the upgrade and nobody knows why"
LONG_CUSTOMER = "purchasing.department.head@long-customer-name.example"
CONFIG = """
[helpdesk]
address = "support@shop.example"
name = "Shop Support"
timezone = "America/New_York"
state_file = "state.json"
[imap]
host = "imap.shop.example"
username = "support@shop.example"
password_env = "MAILHELPDESK_TEST_UNSET_PASSWORD"
[smtp]
host = "smtp.shop.example"
username = "support@shop.example"
password_env = "MAILHELPDESK_TEST_UNSET_PASSWORD"
[sla]
holidays_country = "US"
escalate_to = ["lead@shop.example"]
[[agents]]
name = "Alice"
email = "alice@shop.example"
[[agents]]
name = "Bob"
email = "bob@shop.example"
"""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, tzinfo=NY)


def mail(when: datetime, message_id: str, sender: str, subject: str, extra: str = "", to="support@shop.example") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S %z')}\r\nMessage-ID: {message_id}\r\n\r\nHello.\r\n"
    ).encode()


def build_helpdesk(folder: Path, health: bool = True) -> Path:
    """A config (IMAP, its password variable unset) and a state file made by the engine, as of NOW:
    HD-1 never answered (overdue); HD-2 urgent, due after NOW; HD-3 answered, then the customer wrote again and
    that follow-up is overdue; HD-4 answered and pending; HD-5 long customer and subject; one ignored automatic mail."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mailhelpdesk.toml"
    path.write_text(CONFIG)
    desk = Desk(load_config(path, secrets=False))
    desk.feed(mail(at(15, 19), "<q1@c.example>", "Anna <anna@c.example>", "Export fails"), now=at(15, 19, 1))
    desk.feed(mail(at(19, 9), "<q3@c.example>", "cy@c.example", "Invoice question"), now=at(19, 9, 1))
    desk.feed(mail(at(19, 10), "<r3@shop.example>", "alice@shop.example", "Re: Invoice question",
                   "In-Reply-To: <q3@c.example>\r\nCc: support@shop.example\r\n", to="cy@c.example"), now=at(19, 10, 1))
    desk.feed(mail(at(19, 11), "<q3b@c.example>", "cy@c.example", "Re: Invoice question",
                   "In-Reply-To: <r3@shop.example>\r\n"), now=at(19, 11, 1))
    desk.feed(mail(at(22, 9), "<q4@c.example>", "dee@c.example", "Thanks"), now=at(22, 9, 1))
    desk.feed(mail(at(22, 10), "<r4@shop.example>", "bob@shop.example", "Re: Thanks",
                   "In-Reply-To: <q4@c.example>\r\nCc: support@shop.example\r\n", to="dee@c.example"), now=at(22, 10, 1))
    desk.feed(mail(at(25, 9), "<q5@c.example>", LONG_CUSTOMER, LONG_SUBJECT), now=at(25, 9, 1))
    desk.feed(mail(at(25, 11, 30), "<q2@c.example>", "ben@c.example", "URGENT: the shop is down"), now=at(25, 11, 31))
    desk.feed(mail(at(25, 11, 40), "<auto@robot.example>", "reports@robot.example", "Weekly uptime report",
                   "Auto-Submitted: auto-generated\r\n"), now=at(25, 11, 41))
    desk.tick(NOW)
    state_file = folder / "state.json"
    Store(state_file).save(desk.state)
    if health:
        Health(state_file).write(last_success=at(25, 11, 59).isoformat())
    return path


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def keys_in_order(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:]]


def test_the_list_puts_overdue_tickets_first_and_marks_them(tmp_path):
    config = build_helpdesk(tmp_path)
    result = cli("tickets", "--config", str(config), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KEY", "STATUS", "PRIORITY", "ASSIGNEE", "DUE", "SLA", "CUSTOMER", "SUBJECT"]
    assert keys_in_order(result.output) == ["HD-1", "HD-2", "HD-5", "HD-4", "HD-3"]  # overdue, then urgent, ...
    rows = dict(zip(keys_in_order(result.output), lines[1:]))
    assert "OVERDUE" in rows["HD-1"] and "OVERDUE" in rows["HD-2"]
    assert "OVERDUE" not in rows["HD-5"] + rows["HD-4"] + rows["HD-3"]
    assert "Mon 25 Jan 12:30 EST" in rows["HD-5"]  # due times say their zone


def test_an_answered_ticket_whose_follow_up_is_late_is_not_shown_as_answered(tmp_path):
    config = build_helpdesk(tmp_path)
    rows = cli("tickets", "--config", str(config), "--now", NOW.isoformat()).output.splitlines()
    follow_up = next(line for line in rows if line.startswith("HD-2 "))
    assert "answered" not in follow_up and "OVERDUE" in follow_up and "Wed 20 Jan 11:00 EST" in follow_up
    pending = next(line for line in rows if line.startswith("HD-3 "))
    assert "answered" in pending and "OVERDUE" not in pending
    shown = cli("tickets", "HD-2", "--config", str(config), "--now", NOW.isoformat()).output
    assert "sla:       OVERDUE since 2027-01-20 11:00 EST" in shown


def test_long_values_are_cut_with_an_ellipsis_never_silently(tmp_path):
    config = build_helpdesk(tmp_path)
    row = next(line for line in cli("tickets", "--config", str(config), "--now", NOW.isoformat()).output.splitlines()
               if line.startswith("HD-4 "))
    assert LONG_CUSTOMER[:27] + "…" in row and LONG_CUSTOMER not in row
    assert "…" in row.split(LONG_CUSTOMER[:27] + "…")[1] and LONG_SUBJECT not in row
    assert cli("tickets", "HD-4", "--config", str(config), "--now", NOW.isoformat()).output.startswith(f"HD-4  {LONG_SUBJECT}")


def test_every_documented_filter_works(tmp_path):
    config = build_helpdesk(tmp_path)

    def listed(*args: str) -> list[str]:
        result = cli("tickets", "--config", str(config), "--now", NOW.isoformat(), *args)
        assert result.exit_code == 0, result.output
        return keys_in_order(result.output)

    assert listed("--status", "overdue") == ["HD-1", "HD-2"]
    assert listed("--status", "open") == ["HD-1", "HD-2", "HD-5", "HD-4"]
    assert listed("--status", "pending") == ["HD-3"]
    assert listed("--status", "PENDING", "--status", "overdue") == ["HD-1", "HD-2", "HD-3"]
    nothing = cli("tickets", "--config", str(config), "--now", NOW.isoformat(), "--status", "closed")
    assert nothing.exit_code == 0 and nothing.output.strip() == "no closed tickets (5 in total)"
    wrong = cli("tickets", "--config", str(config), "--status", "late")
    assert wrong.exit_code == 2 and "'late' is not one of" in wrong.stderr
    listed_json = json.loads(cli("tickets", "--json", "--status", "overdue", "--config", str(config),
                                 "--now", NOW.isoformat()).output)
    assert [(t["key"], t["overdue"], t["breached"]) for t in listed_json] == [("HD-1", True, True), ("HD-2", True, True)]
    one = json.loads(cli("tickets", "hd-5", "--json", "--config", str(config), "--now", NOW.isoformat()).output)
    assert one["key"] == "HD-5" and one["overdue"] is False and one["due_at"] == "2027-01-25T17:30:00+00:00"
    missing = cli("tickets", "HD-99", "--config", str(config))
    assert missing.exit_code == 1 and missing.stderr.strip() == "error: no ticket HD-99"


def test_ignored_mail_is_listed_with_its_time_zone_and_reason(tmp_path):
    config = build_helpdesk(tmp_path)
    result = cli("tickets", "--ignored", "--config", str(config))
    assert result.exit_code == 0
    header, row = result.output.splitlines()
    assert header.split()[:2] == ["RECEIVED", "FROM"]
    assert row.startswith("2027-01-25 11:40 EST") and "Auto-Submitted" in row
    as_json = json.loads(cli("tickets", "--ignored", "--json", "--config", str(config)).output)
    assert as_json[0]["at"] == "2027-01-25T16:40:00+00:00"


def test_status_counts_overdue_tickets_with_the_same_definition(tmp_path):
    config = build_helpdesk(tmp_path)
    result = cli("status", "--config", str(config), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert "open tickets: 4 (2 overdue, 0 unassigned); pending: 1" in result.output
    assert "last successful pass: 2027-01-25 11:59:00 EST (1 min ago)" in result.output
    stale = cli("status", "--config", str(config), "--now", at(25, 13).isoformat())
    assert stale.exit_code == 1 and "STALE" in stale.output


# --- the daemon's output ------------------------------------------------------------------------

LOCAL = """
[helpdesk]
address = "support@shop.example"
state_file = "state.json"
[mailbox]
backend = "local"
poll_interval = 1
"""


def local_desk(folder: Path) -> Path:
    from mailhelpdesk.backends.local import LocalMailbox

    (folder / "c.toml").write_text(LOCAL)
    box = LocalMailbox(folder / "mailbox")
    box.connect()
    box.deliver("INBOX", mail(at(25, 9), "<d1@c.example>", "anna@c.example", "Export fails"), at(25, 9))
    box.deliver("INBOX", mail(at(25, 9, 5), "<d2@c.example>", "ben@c.example", "Login broken"), at(25, 9, 5))
    return folder / "c.toml"


def run_daemon_briefly(config: Path, *args: str) -> tuple[str, str]:
    """The real daemon in a process of its own, stopped with SIGTERM once its first pass has saved the state."""
    process = subprocess.Popen([sys.executable, "-m", "mailhelpdesk.app.cli", "run", "--config", str(config), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={k: v for k, v in child_env(NOW).items() if k != "NOTIFY_SOCKET"})
    wait_for(lambda: (config.parent / "state.json.health").exists(), 30)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


def test_the_daemon_reports_each_action_once(tmp_path):
    out, err = run_daemon_briefly(local_desk(tmp_path))
    lines = [line for line in (out + err).splitlines() if line.strip()]
    actions = [line for line in lines if " label " in line or " send " in line or " sent " in line]
    assert actions, lines
    described = [line.split(" INFO ", 1)[1] for line in actions]
    assert len(described) == len(set(described)), lines  # nothing said twice
    assert any(d.startswith("label ") for d in described)


def test_json_log_format_makes_every_line_json(tmp_path):
    config = local_desk(tmp_path)
    out, err = run_daemon_briefly(config, "--log-format", "json")
    lines = [line for line in (out + err).splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, stdout and stderr alike
    messages = [e["message"] for e in entries]
    assert any(m.startswith("label ") for m in messages) and any("stopping" in m for m in messages)
    assert len(messages) == len(set(messages)) and all({"time", "level", "message"} <= set(e) for e in entries)
    (tmp_path / "once").mkdir()
    once = cli("run", "--once", "--log-format", "json", "--config", str(local_desk(tmp_path / "once")))
    assert once.exit_code == 0, once.output
    once_entries = [json.loads(line) for line in once.output.splitlines()]
    assert once_entries[-1]["message"].startswith("pass done:")


def test_with_json_logs_even_a_start_up_error_is_one_json_line(tmp_path):
    config = local_desk(tmp_path)
    (tmp_path / "blocked").write_text("not a folder")
    config.write_text(config.read_text().replace('"state.json"', '"blocked/state.json"'))
    result = cli("run", "--log-format", "json", "--config", str(config))
    assert result.exit_code == 2
    entry = json.loads(result.stderr)
    assert entry["level"] == "error" and "state_file" in entry["message"]
