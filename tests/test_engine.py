"""Pure engine and rule tests: .eml fixtures in, a fixed `now`, no mailbox."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.core.engine import Engine
from mailhelpdesk.model import Incoming, Priority, SendMail, SetLabels, State, Status
from mailhelpdesk.core.mail.parse import clean_title, parse_message

EML = Path(__file__).parent / "fixtures" / "eml"
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # a Friday

BASE = {
    "helpdesk": {"address": "support@shop.example", "name": "Shop Support", "timezone": "Europe/Vienna"},
    "mailbox": {"backend": "local"},
    "agents": [{"name": "Alice", "email": "alice@shop.example"}, {"name": "Bob", "email": "bob@shop.example"}],
}


def make_config(**sections):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return config_from_dict(data)


class Desk:
    """The engine with its state, fed messages one by one as the daemon does."""

    def __init__(self, config=None, first_run=False):
        self.config = config or make_config()
        self.engine = Engine(self.config)
        self.state = State()
        if not first_run:  # a helpdesk that has been running: its first pass (over the backlog) is behind it
            self.state.cursors["last_pass"] = (NOW - timedelta(days=1)).isoformat()
        self.actions: list = []
        self.counter = 0

    def incoming(self, name: str | bytes, folder_role="inbox", replace=None, ref=None) -> Incoming:
        raw = (EML / name).read_bytes() if isinstance(name, str) else name
        for old, new in (replace or {}).items():
            raw = raw.replace(old.encode(), new.encode())
        self.counter += 1
        facts = parse_message(raw)
        return Incoming(ref or f"INBOX:1:{self.counter}", folder_role, facts, received_at=facts.date)

    def feed(self, name, now=NOW, **kwargs):
        incoming = self.incoming(name, **kwargs)
        plan = self.engine.on_message(self.state, incoming, now)
        self.state.merge(plan)
        self.actions += plan.actions
        return plan

    def tick(self, now=NOW):
        plan = self.engine.on_tick(self.state, now)
        self.state.merge(plan)
        self.actions += plan.actions
        return plan

    def sends(self, kind=None):
        return [a for a in self.actions if isinstance(a, SendMail) and (kind is None or a.kind == kind)]

    def ticket(self, key="HD-1"):
        return self.state.tickets[key]


def test_new_request_becomes_a_labelled_ticket_and_is_acknowledged_once():
    desk = Desk()
    plan = desk.feed("question.eml")
    t = desk.ticket()
    assert (t.key, t.status, t.priority, t.assignee) == ("HD-1", Status.OPEN, Priority.NORMAL, "Alice")
    assert t.customer == "anna@customer.example" and t.customer_name == "Anna Müller"
    assert t.subject == "Invoice 1042 shows the wrong VAT"
    labels = [a for a in plan.actions if isinstance(a, SetLabels)]
    assert labels[0].add == {"Helpdesk/Status/Open", "Helpdesk/Priority/Normal", "Helpdesk/Assignee/Alice"}
    assert "Helpdesk/Status/Pending" in labels[0].remove
    desk.tick()
    desk.tick(NOW + timedelta(minutes=5))
    acks = desk.sends("acknowledgement")
    assert len(acks) == 1
    ack = acks[0]
    assert ack.to == "anna@customer.example"
    assert ack.subject == "[HD-1] Invoice 1042 shows the wrong VAT"
    assert ack.in_reply_to == "<q1@customer.example>" and ack.references == ("<q1@customer.example>",)
    assert ack.auto_submitted == "auto-replied"
    # normal = 1d: from Friday 11:00 Vienna time, the same time on the next working day -> Monday 11:00 Vienna
    assert t.due_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert "Monday" in ack.body and "HD-1" in ack.body
    assert ack.message_id == desk.engine.context(desk.state).mail.message_id("ack:HD-1")


def test_follow_up_threads_into_the_ticket_and_the_acknowledgement_is_not_repeated():
    desk = Desk()
    desk.feed("question.eml")
    desk.tick()
    desk.feed("followup.eml")
    desk.tick()
    assert list(desk.state.tickets) == ["HD-1"]
    assert desk.ticket().message_ids == ("<q1@customer.example>", "<q2@customer.example>")
    assert len(desk.sends("acknowledgement")) == 1


def test_agent_reply_records_first_response_and_customer_reply_reopens():
    desk = Desk()
    desk.feed("question.eml")
    desk.feed("agent_reply.eml", folder_role="sent")
    t = desk.ticket()
    assert t.status == Status.PENDING
    assert t.first_response_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    desk.feed("customer_again.eml")  # threads by In-Reply-To to the agent's message only
    t = desk.ticket()
    assert t.status == Status.OPEN and t.first_response_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    assert len(desk.state.tickets) == 1


def test_backlog_conversation_already_answered_gets_no_acknowledgement():
    desk = Desk()
    desk.feed("question.eml")
    desk.feed("agent_reply.eml", folder_role="sent")
    desk.tick()
    assert desk.sends("acknowledgement") == []
    assert desk.ticket().ack_wanted is False


def test_old_mail_gets_no_acknowledgement():
    desk = Desk()
    desk.feed("question.eml", now=NOW + timedelta(days=3))
    desk.tick(NOW + timedelta(days=3))
    assert desk.sends("acknowledgement") == [] and desk.sends("assignment") == []
    assert desk.ticket().status == Status.OPEN


@pytest.mark.parametrize(
    "name, reason",
    [
        ("ooo.eml", "Auto-Submitted"),
        ("exchange_ooo.eml", "automatic (subject)"),  # "Out of Office:", from Exchange
        ("newsletter.eml", "mailing list"),
        ("bounce.eml", "delivery report"),
        ("name_only_from.eml", "no sender address"),
    ],
)
def test_mail_not_from_a_person_opens_no_ticket_and_is_never_answered(name, reason):
    desk = Desk()
    plan = desk.feed(name)
    desk.tick()
    assert desk.state.tickets == {}
    assert desk.sends() == []
    (ignored,) = desk.state.ignored.values()
    assert reason in ignored.reason
    assert plan.actions == [SetLabels((ignored.ref,), frozenset({"Helpdesk/Ignored"}), frozenset())]


def test_out_of_office_answering_our_acknowledgement_is_attached_and_changes_nothing():
    desk = Desk()
    desk.feed("question.eml")
    desk.tick()
    ack = desk.sends("acknowledgement")[0]
    desk.state.sent[ack.message_id] = None or _record(ack)
    desk.state.index[ack.message_id] = "HD-1"
    before = desk.ticket()
    desk.feed("ooo.eml", replace={"Subject: Automatic reply": f"In-Reply-To: {ack.message_id}\r\nSubject: Automatic reply"})
    desk.tick()
    after = desk.ticket()
    assert after.status == before.status == Status.OPEN
    assert after.first_response_at is None
    assert len(after.message_ids) == 2 and after.history[-1].what == "automatic mail attached"
    assert len(desk.sends()) == 2  # the acknowledgement and the assignment notice, nothing for the robot


def test_bounce_of_our_acknowledgement_flags_the_ticket():
    desk = Desk()
    desk.feed("question.eml")
    desk.tick()
    ack = desk.sends("acknowledgement")[0]
    desk.state.sent[ack.message_id] = _record(ack)
    desk.state.index[ack.message_id] = "HD-1"
    desk.feed("bounce.eml", replace={"ACK_ID": ack.message_id})
    assert desk.ticket().bounced is True
    assert desk.ticket().status == Status.OPEN


def test_urgent_request_is_recognised_and_told_so():
    desk = Desk()
    desk.feed("urgent.eml")
    desk.tick()
    t = desk.ticket()
    assert t.priority == Priority.URGENT
    assert t.due_at == datetime(2026, 11, 20, 10, 5, tzinfo=UTC) + timedelta(hours=1)
    assert "urgent" in desk.sends("acknowledgement")[0].body


def test_legacy_charset_and_backslashes_survive():
    desk = Desk()
    desk.feed("koi8r.eml")
    t = desk.ticket()
    assert t.customer_name == "Иван Иванов" and t.subject == "Не приходит письмо"
    facts = parse_message((EML / "koi8r.eml").read_bytes())
    assert "C:\\Users\\new\\report.txt" in facts.body and "подтверждением" in facts.body


def test_a_stranger_quoting_a_ticket_number_gets_a_new_linked_ticket():
    desk = Desk()
    desk.feed("question.eml")
    desk.feed("stranger_tag.eml")
    assert set(desk.state.tickets) == {"HD-1", "HD-2"}
    assert desk.ticket("HD-2").related == ("HD-1",)
    assert desk.ticket("HD-1").message_ids == ("<q1@customer.example>",)


def test_the_subject_tag_threads_a_participant_without_references():
    desk = Desk()
    desk.feed("question.eml")
    raw = (EML / "stranger_tag.eml").read_bytes().replace(b"Eve <eve@other.example>", b"anna@customer.example")
    desk.feed(raw)
    assert list(desk.state.tickets) == ["HD-1"] and len(desk.ticket().message_ids) == 2


def test_contact_form_customer_is_the_reply_to_address():
    desk = Desk()
    desk.feed("contact_form.eml")
    desk.tick()
    assert desk.ticket().customer == "fiona@green.example"
    assert desk.sends("acknowledgement")[0].to == "fiona@green.example"


def test_redelivery_is_recognised_by_message_id():
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")
    plan = desk.feed("question.eml", ref="INBOX:1:99")
    assert list(desk.state.tickets) == ["HD-1"]
    assert desk.ticket().refs == ("INBOX:1:1", "INBOX:1:99")
    assert [a.refs for a in plan.actions if isinstance(a, SetLabels)] == [("INBOX:1:99",)]


def test_customer_writing_into_a_closed_ticket_starts_a_new_linked_one():
    desk = Desk()
    desk.feed("question.eml")
    desk.state.tickets["HD-1"] = dataclasses.replace(desk.ticket(), status=Status.CLOSED)
    desk.feed("followup.eml")
    assert desk.ticket("HD-2").related == ("HD-1",)
    assert desk.ticket("HD-1").status == Status.CLOSED


def test_round_robin_and_least_open_spread_the_work():
    desk = Desk()
    for name in ("question.eml", "urgent.eml", "koi8r.eml"):
        desk.feed(name)
    assert [t.assignee for t in desk.state.tickets.values()] == ["Alice", "Bob", "Alice"]
    desk = Desk(make_config(assignment={"strategy": "least_open"}))
    desk.feed("question.eml")
    desk.feed("urgent.eml")
    desk.state.tickets["HD-2"] = dataclasses.replace(desk.ticket("HD-2"), status=Status.CLOSED)
    desk.feed("koi8r.eml")
    assert desk.ticket("HD-3").assignee == "Bob"
    desk = Desk(make_config(assignment={"strategy": "manual"}))
    desk.feed("question.eml")
    assert desk.ticket().assignee is None and desk.sends("assignment") == []


def test_configured_priority_rules_win_over_defaults():
    config = make_config(priority={"rules": [{"sender_domains": ["customer.example"], "priority": "high"}]})
    desk = Desk(config)
    desk.feed("question.eml")
    desk.feed("urgent.eml")
    assert desk.ticket().priority == Priority.HIGH
    assert desk.ticket("HD-2").priority == Priority.NORMAL  # the default keyword rule is replaced


TOPICS = ("the wrong VAT", "a missing parcel", "a login that fails", "a refund", "the new price list",
          "an address change", "a broken zip", "the API limits", "a second seat", "the Christmas hours")


def test_per_sender_ceiling_caps_acknowledgements():
    desk = Desk(make_config(autoreply={"max_per_sender": 2}))
    for i in range(4):
        raw = (EML / "question.eml").read_bytes().replace(b"<q1@", f"<q1-{i}@".encode())
        raw = raw.replace(b"shows the wrong VAT", f"about {TOPICS[i]}".encode())
        raw = raw.replace(b"shows 19% VAT", f"is about {TOPICS[i]}".encode())
        desk.feed(raw)
    desk.tick()
    assert len(desk.sends("acknowledgement")) == 2
    assert len(desk.state.tickets) == 4
    held = [t for t in desk.state.tickets.values() if t.ack_withheld]
    assert len(held) == 2 and all("max_per_sender" in t.ack_withheld for t in held)


def test_agent_label_change_moves_the_ticket_and_relabels_every_message():
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")
    desk.feed("followup.eml", ref="INBOX:1:2")
    applied = frozenset(desk.ticket().labels_applied)
    # the agent marks one message resolved and hands it to Bob; the other message still has the old labels
    changed = (applied - {"Helpdesk/Status/Open", "Helpdesk/Assignee/Alice"}) | {"Helpdesk/Status/Resolved", "Helpdesk/Assignee/Bob"}
    plan = desk.engine.on_labels(desk.state, [("INBOX:1:1", applied), ("INBOX:1:2", changed)], NOW)
    desk.state.merge(plan)
    t = desk.ticket()
    assert (t.status, t.assignee, t.resolved_at) == (Status.RESOLVED, "Bob", NOW)
    (relabel,) = [a for a in plan.actions if isinstance(a, SetLabels)]
    assert set(relabel.refs) == {"INBOX:1:1", "INBOX:1:2"} and "Helpdesk/Status/Resolved" in relabel.add
    # our own relabelling comes back as a change: it is recognised and nothing happens
    again = desk.engine.on_labels(desk.state, [("INBOX:1:1", relabel.add), ("INBOX:1:2", relabel.add)], NOW)
    assert again.actions == [] and again.tickets == {}


def test_a_message_stripped_of_our_labels_is_labelled_again():
    """A write another client raced (CONDSTORE conflict), or an agent clearing every tag of one message: the
    ticket does not change, and that message gets its labels back (exactly one status on every message)."""
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")
    desk.feed("followup.eml", ref="INBOX:1:2")
    applied = frozenset(desk.ticket().labels_applied)
    before = desk.ticket()
    plan = desk.engine.on_labels(desk.state, [("INBOX:1:1", applied), ("INBOX:1:2", frozenset({"$Junk"}))], NOW)
    desk.state.merge(plan)
    (relabel,) = [a for a in plan.actions if isinstance(a, SetLabels)]
    assert relabel.refs == ("INBOX:1:2",) and relabel.add == applied
    t = desk.ticket()
    assert (t.status, t.priority, t.assignee) == (before.status, before.priority, before.assignee)


def test_agent_adding_a_second_status_label_wins_over_the_old_one():
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")
    applied = frozenset(desk.ticket().labels_applied)
    plan = desk.engine.on_labels(desk.state, [("INBOX:1:1", applied | {"Helpdesk/Status/Pending", "Helpdesk/Priority/Urgent"})], NOW)
    desk.state.merge(plan)
    assert desk.ticket().status == Status.PENDING and desk.ticket().priority == Priority.URGENT
    assert "Helpdesk/Status/Open" in plan.actions[0].remove


def test_ignored_mail_becomes_a_ticket_when_an_agent_gives_it_a_status():
    desk = Desk()
    desk.feed("exchange_ooo.eml", ref="INBOX:1:7")
    plan = desk.engine.on_labels(desk.state, [("INBOX:1:7", frozenset({"Helpdesk/Ignored", "Helpdesk/Status/Open"}))], NOW)
    desk.state.merge(plan)
    desk.tick()
    t = desk.ticket()
    assert t.customer == "dana@corp.example" and t.status == Status.OPEN
    assert desk.sends("acknowledgement") == []
    assert desk.state.ignored["<ooo2@corp.example>"].ticket == "HD-1"


def test_ignored_mail_promoted_straight_to_resolved_is_resolved_now_and_closes_in_time():
    desk = Desk()
    desk.feed("exchange_ooo.eml", ref="INBOX:1:7")
    labels = frozenset({"Helpdesk/Ignored", "Helpdesk/Status/Resolved"})
    desk.state.merge(desk.engine.on_labels(desk.state, [("INBOX:1:7", labels)], NOW))
    t = desk.ticket()
    assert (t.status, t.resolved_at, t.waiting_since) == (Status.RESOLVED, NOW, None)
    assert any(h.what == "status" and "open -> resolved" in h.detail for h in t.history)
    desk.tick(NOW + timedelta(days=4))  # [resolution] close_after = 3d
    assert desk.ticket().status == Status.CLOSED


@pytest.mark.parametrize(
    "subject, title",
    [
        ("AW: Ответ: 回复：Invoice", "Invoice"),
        ("Re: Re: [HD-7] Fwd: Login broken", "Login broken"),
        ("SV: VS: Tilaus", "Tilaus"),
        ("Rechnung: falsch", "Rechnung: falsch"),
        ("", "(no subject)"),
    ],
)
def test_ticket_titles_lose_reply_prefixes_in_any_language(subject, title):
    assert clean_title(subject) == title


def _record(ack: SendMail):
    from mailhelpdesk.model import SentRecord

    return SentRecord(ack.key, ack.message_id, ack.to, ack.kind, ack.ticket, NOW, done=True)
