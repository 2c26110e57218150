"""The policy as a table (policy.py), the command registry, one overdue truth, and a duty that survives a bad ticket."""

from __future__ import annotations

import ast
import dataclasses
import re
from datetime import timedelta
from pathlib import Path

from mailhelpdesk.core.duties import digests as digest

from mailhelpdesk.core import policy
from mailhelpdesk.model import HistoryEvent, MailKind, SendMail, Status
from mailhelpdesk.core.judge import mail_commands as commands
from mailhelpdesk.core.sla_state import sla_state
from test_workflow import FRIDAY_EVENING, SHARED_ACCOUNT_REPLY, at, command_mail, question, reminders, workflow_desk

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "mailhelpdesk"


def test_every_rule_and_duty_is_a_module_with_a_name_a_description_and_decide():
    tables = (policy.MESSAGE_RULES, policy.LABEL_RULES, policy.TIMED_DUTIES)
    for module in (m for table in tables for m in table):
        assert module.NAME and "\n" not in module.DESCRIPTION and callable(module.decide), module.__name__
    assert [m.NAME for m in policy.MESSAGE_RULES] == ["known", "ours", "command", "in ticket", "not a request",
                                                      "new ticket"]
    assert [m.NAME for m in policy.TIMED_DUTIES] == ["snoozes", "acknowledgement limits", "acknowledgements", "escalations",
                                                     "quiet customers", "resolutions", "auto-close", "notices", "digests"]
    assert len((PACKAGE / "core" / "policy.py").read_text().splitlines()) <= 80  # one screen


def _imports(path: Path) -> set[str]:
    """The package modules (and names) a module imports at its top level (imports inside functions are not edges)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mailhelpdesk"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("mailhelpdesk"))
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: imports are absolute"
    return names


def _graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_module_is_part_of_an_import_cycle():
    graph = _graph()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert [m for m in graph if reaches(m, m)] == []


# The layers, lowest first: each imports only from its own layer and those below (ARCHITECTURE.md)
LAYERS = ["errors", "kinds", "model", "capabilities", "config", "core", "backends", "store", "app"]
CORE_FOLDERS = ["judge", "mail", "rules", "duties"]  # within core, a folder imports only from those before it


def test_the_layers_import_only_downwards():
    up = []
    for module, imported in _graph().items():
        parts = module.split(".")
        if len(parts) < 2:
            continue  # the package's own __init__
        for other in imported:
            theirs = other.split(".")
            if LAYERS.index(theirs[1]) > LAYERS.index(parts[1]):
                up.append(f"{module} -> {other}")
            if parts[1] == theirs[1] == "core" and len(parts) > 3 and len(theirs) > 3 and parts[2] != theirs[2]:
                if CORE_FOLDERS.index(theirs[2]) > CORE_FOLDERS.index(parts[2]):
                    up.append(f"{module} -> {other}")
    assert up == []
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(
        LAYERS[5:]), "every folder is a layer"


# --- commands: one registry ---------------------------------------------------------------------------------------


def test_the_readme_lists_exactly_the_registered_commands():
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"<!-- commands:.*?-->\n(.*?)\n\s*<!-- /commands -->", readme, re.S).group(1)
    assert [line.strip() for line in listed.splitlines()] == commands.readme_list().splitlines()


def test_a_new_command_is_one_registration(monkeypatch):
    """The "done when" of issue 12: a command declared through the registry alone is parsed, carried out, and
    listed in the rejection mail (the README line is the second file; the test above keeps it honest)."""
    monkeypatch.setattr(commands, "COMMANDS", dict(commands.COMMANDS))

    @commands.command("snooze", {"en": "wait for the customer for a while", "ru": "отложить"}, {"en": "DAYS"})
    def snooze(ticket, argument, run):
        if not argument.isdigit():
            raise commands.CommandProblem(f"#snooze {argument!r}: a number of days")
        return ticket.log(run.when, HistoryEvent.NOTE, f"snoozed for {argument} days by {run.who}",
                          status=Status.PENDING, waiting_since=None)

    assert commands.parse_commands("#snooze 3\n#note hi") == [commands.Command("snooze", "3"),
                                                             commands.Command("note", "hi")]
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("alice@shop.example", "#snooze 3"), now=at(19, 10))
    assert desk.ticket().status == Status.PENDING
    assert desk.ticket().history[-1].detail == "snoozed for 3 days by Alice"
    desk.feed(command_mail("alice@shop.example", "#snooze soon"), now=at(19, 11))
    (rejected,) = desk.sends(MailKind.COMMAND_REJECTED)
    assert "#snooze 'soon': a number of days" in rejected.body
    assert "#snooze DAYS" in rejected.body and "wait for the customer for a while" in rejected.body
    assert "#assign NAME" in rejected.body  # the whole list, from the registry


# --- one overdue truth (issue 12's two reproduced disagreements) --------------------------------------------------


def _agree(desk, now):
    ticket = desk.ticket()
    overdue = sla_state(ticket, now).overdue
    assert ("Helpdesk/Overdue" in desk.engine.labels.for_ticket(ticket, now)) == overdue == digest.overdue(ticket, now)
    return overdue


def test_a_ticket_raised_to_urgent_is_due_sooner_everywhere_at_once():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    normal_due = desk.ticket().due_at
    desk.feed(command_mail("alice@shop.example", "#priority urgent").replace(b"10:00:00", b"09:15:00"), now=at(19, 9, 15))
    urgent_due = desk.ticket().due_at
    assert urgent_due < normal_due and urgent_due == at(19, 10)  # 1 business hour from the wait's start at 9:00
    for now in (at(19, 9, 30), at(19, 10, 1), at(19, 13)):
        desk.tick(now)
        overdue = _agree(desk, now)
        assert overdue == bool(reminders(desk, "escalation breach")) == ("Helpdesk/Overdue" in desk.ticket().labels_applied)
    assert overdue


def test_a_reopened_ticket_that_breached_before_is_not_overdue_until_its_new_due_time():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(at(21, 16))
    assert _agree(desk, at(21, 16)) and "Helpdesk/Overdue" in desk.ticket().labels_applied
    desk.feed(SHARED_ACCOUNT_REPLY, folder_role="sent", now=at(21, 16, 31))
    again = question(at(22, 10), message_id="<wf2@customer.example>", subject="Re: Export fails").replace(
        b"\r\n\r\n", b"\r\nIn-Reply-To: <wf-reply@shop.example>\r\n\r\n", 1)
    desk.feed(again, now=at(22, 10, 1))
    ticket = desk.ticket()
    assert ticket.status == Status.OPEN and ticket.due_at > at(22, 10, 1) and ticket.escalations == ()
    assert not _agree(desk, at(22, 10, 1)) and "Helpdesk/Overdue" not in ticket.labels_applied
    desk.tick(at(22, 10, 2))
    assert "Helpdesk/Overdue" not in desk.ticket().labels_applied
    assert sla_state(desk.ticket(), at(22, 10, 2)).breached  # it did breach once: reports still count it


# --- a duty goes on past a bad ticket -----------------------------------------------------------------------------


def test_one_bad_ticket_in_a_duty_is_recorded_and_the_others_go_on():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(question(at(19, 9), message_id="<wf9@customer.example>", sender="ben@other.example"), now=at(19, 9))
    broken = dataclasses.replace(desk.ticket("HD-1"), message_ids=())  # nothing to answer: the builder fails
    desk.state.tickets["HD-1"] = broken
    plan = desk.tick(at(19, 9, 1))
    acks = [a for a in plan.actions if isinstance(a, SendMail) and a.kind == MailKind.ACKNOWLEDGEMENT]
    assert [a.ticket for a in acks] == ["HD-2"]
    assert desk.ticket("HD-1").history[-1].what == HistoryEvent.DUTY_FAILED
    assert any(n.startswith("error: HD-1: acknowledgements: IndexError") for n in plan.notes)
    desk.tick(at(19, 9, 2))  # the same failure again is not written twice
    assert sum(h.what == HistoryEvent.DUTY_FAILED for h in desk.ticket("HD-1").history) == 1
    assert desk.ticket("HD-1").ack_wanted  # nothing decided for it: tried again when it can be
    assert timedelta(0) <= at(19, 9, 2) - desk.ticket("HD-2").created_at


def test_a_new_automatic_mail_signal_is_one_line(monkeypatch):
    """The "done when" of issue 12: a robot's header added to one table in core/judge/automatic.py is enough for the
    parser to call the mail automatic and for the engine to open no ticket and send nothing."""
    from mailhelpdesk.core.judge import automatic

    robot = (b"From: Alerts <alerts@monitoring.example>\r\nTo: support@shop.example\r\nSubject: Disk 91% full\r\n"
             b"Date: Tue, 19 Jan 2027 09:00:00 -0500\r\nMessage-ID: <alert1@monitoring.example>\r\n"
             b"X-Monitoring-Alert: disk\r\n\r\nHost db1 disk / is 91% full.\r\n")
    desk = workflow_desk()
    desk.feed(robot, now=at(19, 9, 1))
    assert list(desk.state.tickets) == ["HD-1"], "a person's mail, as far as we can tell"
    monkeypatch.setattr(automatic, "STRONG_HEADERS", {**automatic.STRONG_HEADERS,
                                                      "X-Monitoring-Alert": "monitoring alert (X-Monitoring-Alert)"})
    desk = workflow_desk()
    desk.feed(robot, now=at(19, 9, 1))
    assert desk.state.tickets == {} and desk.sends() == []
    assert desk.state.ignored["<alert1@monitoring.example>"].reason == "monitoring alert (X-Monitoring-Alert)"


def test_mail_delivered_from_the_support_address_is_not_the_shared_account():
    """Only the sent folder proves the shared account: a delivered `From: support@` is a forgery (it must not
    answer, pend or close a ticket) or a web form writing as us for a visitor (a request from the visitor)."""
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    forged = ("From: support@shop.example\r\nTo: anna@customer.example\r\nCc: support@shop.example\r\n"
              "Subject: Re: [HD-1] Export fails\r\nDate: Tue, 19 Jan 2027 09:30:00 -0500\r\n"
              "Message-ID: <forged@attacker.example>\r\nReferences: <wf1@customer.example>\r\n\r\nSolved, bye.\r\n").encode()
    desk.feed(forged, now=at(19, 9, 31))
    ticket = desk.ticket()
    assert ticket.status == Status.OPEN and ticket.first_response_at is None, "not an answer from us"
    assert "<forged@attacker.example>" not in ticket.message_ids
    desk.feed(forged.replace(b"<forged@", b"<sent-copy@"), folder_role="sent", now=at(19, 9, 32))
    assert desk.ticket().status == Status.PENDING, "the same mail in the sent folder is the shared account's answer"
    form = ("From: Website <support@shop.example>\r\nReply-To: Fiona <fiona@green.example>\r\n"
            "To: support@shop.example\r\nSubject: Contact form: parcel\r\nDate: Tue, 19 Jan 2027 10:00:00 -0500\r\n"
            "Message-ID: <form1@shop.example>\r\n\r\nWhere is my parcel?\r\n").encode()
    desk.feed(form, now=at(19, 10, 1))
    assert desk.state.ticket_of("<form1@shop.example>").customer == "fiona@green.example"
