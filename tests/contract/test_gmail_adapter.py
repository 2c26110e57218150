"""Gmail-specific promises: threads, quota per pass, expired history, retries, auth errors."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gmail_fake import GmailFake

from backends import GmailBackend
from mailhelpdesk.errors import AuthError

EML = Path(__file__).parent.parent / "fixtures" / "eml"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


@pytest.fixture
def fake():
    with GmailFake("support@shop.example", seed=3) as server:
        yield server


@pytest.fixture
def backend(fake, tmp_path):
    return GmailBackend(fake, tmp_path)


def eml(name: str) -> bytes:
    return (EML / name).read_bytes()


def seed(backend):
    return {name: backend.deliver(eml(name), T0 + timedelta(minutes=i)) for i, name in
            enumerate(["question.eml", "followup.eml", "urgent.eml", "ooo.eml", "newsletter.eml"])}


def test_acknowledgement_goes_into_the_customers_thread(fake, backend):
    refs = seed(backend)
    desk = backend.helpdesk(lambda: NOW)
    desk.run_pass()
    thread = fake.message(refs["question.eml"])["threadId"]
    acks = [mid for mid, raw in fake.sent if b"X-Mailhelpdesk-Kind: acknowledgement" in raw]
    assert any(fake.message(mid)["threadId"] == thread for mid in acks)
    assert fake.message(refs["followup.eml"])["threadId"] == thread


def test_labels_are_created_once_nested_and_coloured_from_the_palette(fake, backend):
    from gmail_fake import LABEL_PALETTE

    seed(backend)
    backend.helpdesk(lambda: NOW).run_pass()
    labels = {label["name"]: label for label in fake.labels()}
    for name in ("Helpdesk", "Helpdesk/Status", "Helpdesk/Status/Open", "Helpdesk/Priority/Urgent", "Helpdesk/Assignee/Bob"):
        assert name in labels
    colour = labels["Helpdesk/Status/Open"]["color"]
    assert colour["backgroundColor"] in LABEL_PALETTE and colour["textColor"] in LABEL_PALETTE
    assert labels["Helpdesk/Status/Open"]["color"] != labels["Helpdesk/Status/Resolved"]["color"]
    fake.reset_counters()
    backend.helpdesk(lambda: NOW).run_pass()
    assert fake.call_counts()["users.labels.create"] == 0


def test_an_idle_pass_costs_one_history_list_call(fake, backend):
    seed(backend)
    desk = backend.helpdesk(lambda: NOW)
    desk.run_pass()
    desk.run_pass()  # sees our own label changes come back, and does nothing
    fake.reset_counters()
    desk.run_pass()
    assert fake.call_counts() == {"users.history.list": 1}
    assert fake.quota_units == 2


def test_a_new_process_after_a_sending_pass_does_not_download_what_we_sent(fake, backend):
    """`run --once` after a pass that sent mail: the ids we sent travel with the cursor, so the next process's
    pass is one history.list, not a messages.get of every mail we sent."""
    seed(backend)
    first = backend.helpdesk(lambda: NOW)
    first.run_pass()
    assert fake.sent, "the first pass sent acknowledgements"
    first.close()
    fake.reset_counters()
    later = backend.helpdesk(lambda: NOW + timedelta(minutes=1))  # a new process: a new adapter, the saved state
    report = later.run_pass()
    counts = fake.call_counts()
    assert "users.messages.get" not in counts, counts
    assert report.messages == 0
    assert later.state.cursors.get("own_sent") == [], "seen once in the history: forgotten"


def test_an_expired_history_id_recovers_without_duplicates_or_second_sends(fake, backend):
    refs = seed(backend)
    desk = backend.helpdesk(lambda: NOW)
    desk.run_pass()
    sent = len(fake.sent)
    tickets = dict(desk.state.tickets)
    # while the daemon is away: an agent resolves a ticket, a customer writes, and the history id expires
    fake.set_labels(refs["urgent.eml"], add=["Helpdesk/Status/Resolved"], remove=["Helpdesk/Status/Open"])
    raw = eml("question.eml").replace(b"<q1@customer.example>", b"<late@customer.example>").replace(b"Invoice 1042", b"Refund")
    raw = raw.replace(b"anna@customer.example", b"lena@late.example")  # anna had her one acknowledgement today
    fake.add_message(raw, internal_date=NOW)
    fake.expire_history()
    later = backend.helpdesk(lambda: NOW + timedelta(minutes=5))
    later.run_pass()
    assert len(later.state.tickets) == len(tickets) + 1
    kinds = sorted(raw.split(b"X-Mailhelpdesk-Kind: ")[1].split(b"\n")[0].strip().decode() for _, raw in fake.sent[sent:])
    # the new ticket's acknowledgement and assignee notice, and the resolved ticket's notice; nothing twice
    assert kinds == ["acknowledgement", "assignment", "resolution"]
    urgent = next(t for t in later.state.tickets.values() if t.priority.value == "urgent")
    assert urgent.status.value == "resolved"
    fake.reset_counters()
    later.run_pass()
    assert fake.call_counts() == {"users.history.list": 1}


def test_rate_limits_and_server_errors_are_retried(fake, backend, monkeypatch):
    import googleapiclient.http

    monkeypatch.setattr(googleapiclient.http.time, "sleep", lambda s: None)
    monkeypatch.setattr("mailhelpdesk.backends.gmail.time.sleep", lambda s: None)
    seed(backend)
    desk = backend.helpdesk(lambda: NOW)
    fake.fail_next(3, status=429, method="users.messages.get")
    fake.fail_next(1, status=503, method="users.messages.send")
    fake.fail_next(1, status=403, reason="rateLimitExceeded", method="users.messages.list")
    report = desk.run_pass()
    assert report.messages == 5 and len(desk.state.tickets) == 2


def test_a_revoked_token_says_what_to_run(fake, backend):
    fake.require_token = "the-real-token"
    desk = backend.helpdesk(lambda: NOW)
    with pytest.raises(AuthError, match="mailhelpdesk auth"):
        desk.run_pass()


def test_missing_token_file_says_what_to_run(fake, tmp_path):
    from mailhelpdesk.backends.gmail import GmailMailbox

    backend = GmailBackend(fake, tmp_path)
    with pytest.raises(AuthError, match="run `mailhelpdesk auth` first"):
        GmailMailbox(backend.config).connect()


def test_token_file_is_written_with_mode_0600(tmp_path):
    from mailhelpdesk.backends.gmail import save_token

    class Creds:
        def to_json(self):
            return json.dumps({"token": "t", "refresh_token": "r"})

    path = tmp_path / "token.json"
    save_token(path, Creds())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "r"
