"""The store (issue 10): a save costs what the change costs, a kill at any moment of a save, a compaction or an
archive move loses nothing that was saved, old state files are migrated, and history stays findable without
being loaded."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailhelpdesk.store import archive
from mailhelpdesk.model import HistoryEntry, HistoryEvent, Ignored, SentRecord, State, Status, Ticket
from mailhelpdesk.store.state import SCHEMA_VERSION, Store
from test_engine import Desk

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "fixtures" / "store" / "state-v1.json"  # written by the schema-1 store


def ticket(n: int, status: Status = Status.OPEN, quiet_for: timedelta = timedelta(hours=1)) -> Ticket:
    at = NOW - quiet_for
    return Ticket(key=f"HD-{n}", number=n, customer=f"c{n}@example.org", subject=f"Question {n}", created_at=at,
                  status=status, message_ids=(f"<q{n}@example.org>",), refs=(f"INBOX:1:{n}",),
                  history=(HistoryEntry(at, HistoryEvent.CREATED, ""),), closed_at=at if status == Status.CLOSED else None)


def sent(n: int, done: bool = True) -> SentRecord:
    return SentRecord(f"ack:HD-{n}", f"<mhd.ack.HD-{n}@shop.example>", f"c{n}@example.org", "acknowledgement",
                      f"HD-{n}", NOW, done=done)


def a_state(tickets: int = 30) -> State:
    state = State(next_number=tickets + 1, cursors={"last_pass": NOW.isoformat()})
    for n in range(1, tickets + 1):
        quiet = timedelta(days=10) if n % 3 == 0 else timedelta(hours=1)
        state.tickets[f"HD-{n}"] = ticket(n, Status.CLOSED if n % 3 == 0 else Status.OPEN, quiet)
        state.sent[f"<mhd.ack.HD-{n}@shop.example>"] = sent(n)
    state.ignored["<robot@news.example>"] = Ignored("<robot@news.example>", "INBOX:1:999", "newsletter",
                                                     "news@news.example", "Weekly", NOW - timedelta(days=40))
    state.rebuild_index()
    return state


def same(a: State, b: State) -> bool:
    return (a.tickets == b.tickets and a.sent == b.sent and a.ignored == b.ignored and a.cursors == b.cursors
            and a.next_number == b.next_number)


def test_a_save_appends_what_changed_and_a_load_replays_it(tmp_path):
    path = tmp_path / "state.json"
    Store(path).save(a_state())  # nothing loaded: the file is written whole
    store = Store(path)
    state = store.load()
    size = path.stat().st_size
    state.tickets["HD-1"] = state.tickets["HD-1"].log(NOW, HistoryEvent.AGENT_REPLIED, "alice", status=Status.PENDING)
    state.sent["<mhd.ack.HD-2@shop.example>"] = dataclasses.replace(state.sent["<mhd.ack.HD-2@shop.example>"], attempts=1)
    store.save(state)
    store.save(state)  # nothing new: nothing written
    line = store.journal.path.read_text()
    assert line.count("\n") == 1 and path.stat().st_size == size
    record = json.loads(line)
    assert set(record["put"]) == {"tickets", "sent"} and list(record["put"]["tickets"]) == ["HD-1"]
    assert len(line) < 2000 < size, "a save costs what the change costs, not what the state weighs"
    again = Store(path).load()
    assert same(again, state) and again.tickets["HD-1"].status == Status.PENDING


def test_a_line_cut_short_by_a_kill_is_ignored_and_cut_off_before_the_next_save(tmp_path):
    path, store, _ = journalled(tmp_path, saves=1)
    with open(store.journal.path, "ab") as handle:
        handle.write(b'{"seq": 2, "put": {"tickets": {"HD-1": {"key": "HD-1", "sub')  # the kill came mid-write
    store = Store(path)
    state = store.load()
    assert state.tickets["HD-1"].subject == "journalled 1"
    state.tickets["HD-2"] = dataclasses.replace(state.tickets["HD-2"], subject="second")
    store.save(state)
    lines = store.journal.path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert Store(path).load().tickets["HD-2"].subject == "second"


def test_a_journal_without_its_file_is_not_half_a_state(tmp_path):
    path, _, _ = journalled(tmp_path, saves=1)
    path.unlink()  # the state file lost: the journal alone must not look like a state
    assert Store(path).load().tickets == {}


def test_compaction_folds_the_journal_into_the_file(tmp_path):
    path = tmp_path / "state.json"
    Store(path).save(a_state())
    store = Store(path)
    state = store.load()
    for n in range(1, 11):
        state.tickets[f"HD-{n}"] = dataclasses.replace(state.tickets[f"HD-{n}"], subject=f"changed {n}")
        store.save(state)
    assert store.journal.path.read_text().count("\n") == 10
    store.compact(state)
    assert store.journal.path.read_text() == ""
    data = json.loads(path.read_text())
    assert data["meta"]["1"]["schema_version"] == SCHEMA_VERSION and data["meta"]["1"]["journal_seq"] == 10
    assert data["tickets"]["HD-3"]["subject"] == "changed 3"
    again = Store(path).load()
    assert same(again, state)
    state.tickets["HD-1"] = dataclasses.replace(state.tickets["HD-1"], subject="after")
    store.save(state)  # numbering goes on after a compaction: the file's journal_seq never hides a new line
    assert Store(path).load().tickets["HD-1"].subject == "after"


def killed_at(step: int, work) -> int:
    """Run `work` in a child process that SIGKILLs itself at its `step`-th fsync or rename; the exit status."""
    pid = os.fork()
    if pid == 0:  # the child
        calls = {"n": 0}

        def dying(real):
            def call(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)
            return call

        os.fsync, os.replace = dying(os.fsync), dying(os.replace)
        try:
            work()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def journalled(tmp_path: Path, saves: int = 2) -> tuple[Path, Store, State]:
    """`a_state()` in a fresh file, then `saves` journalled changes (HD-1, HD-2 ... get a new subject)."""
    path = tmp_path / "state.json"
    Store(path).save(a_state())
    store = Store(path)
    state = store.load()
    for n in range(1, saves + 1):
        state.tickets[f"HD-{n}"] = dataclasses.replace(state.tickets[f"HD-{n}"], subject=f"journalled {n}")
        store.save(state)
    return path, store, state


def test_a_kill_at_any_moment_of_a_compaction_loses_nothing(tmp_path):
    path, _, _ = journalled(tmp_path)
    expected = Store(path).load()
    pristine = tmp_path / "pristine"
    shutil.copytree(tmp_path, pristine, ignore=shutil.ignore_patterns("pristine"))
    kills = 0
    for step in range(1, 50):
        def compact():
            s = Store(path)
            s.compact(s.load())
        status = killed_at(step, compact)
        after = Store(path).load()
        assert same(after, expected), f"killed at step {step}"
        if not os.WIFSIGNALED(status):
            break
        kills += 1
        for name in os.listdir(pristine):  # start the next kill from the same files
            shutil.copy2(pristine / name, tmp_path / name)
    assert kills >= 3, "the compaction has several durable steps, each of them was killed"


def test_a_kill_at_any_moment_of_an_archive_move_loses_no_ticket_and_counts_none_twice(tmp_path):
    path = tmp_path / "state.json"
    Store(path).save(a_state())
    everyone = sorted(Store(path).load().tickets)
    history = [k for k, t in Store(path).load().tickets.items() if archive.is_history(t, NOW)]
    assert history and len(history) < len(everyone)
    pristine = tmp_path.parent / (tmp_path.name + "-pristine")
    shutil.copytree(tmp_path, pristine)
    kills = 0
    for step in range(1, 80):
        def move():
            s = Store(path)
            s.maintain(s.load(), NOW)
        status = killed_at(step, move)
        store = Store(path)
        state = store.load()
        keys = [t.key for t in store.tickets(state)]
        assert sorted(keys) == everyone, f"killed at step {step}: every ticket once, in the state or the archive"
        for key in history:  # wherever it is, its mail is still recognised
            assert state.ticket_of(f"<q{key[3:]}@example.org>") or state.archived(f"<q{key[3:]}@example.org>") == key
        store.maintain(state, NOW)  # the next pass finishes the move
        state = Store(path).load()
        assert sorted(state.tickets) == sorted(set(everyone) - set(history))
        assert sorted(t.key for t in Store(path).tickets(state)) == everyone
        if not os.WIFSIGNALED(status):
            break
        kills += 1
        shutil.rmtree(tmp_path)
        shutil.copytree(pristine, tmp_path)
    assert kills >= 3


def test_history_moves_to_the_archive_and_is_found_without_loading_it(tmp_path):
    path = tmp_path / "state.json"
    store = Store(path)
    store.save(a_state())
    state = store.load()
    moved = store.maintain(state, NOW)
    assert moved == 10 + 1  # ten closed, quiet tickets and one old ignored mail
    assert all(t.status != Status.CLOSED for t in state.tickets.values()) and not state.ignored
    assert "<mhd.ack.HD-3@shop.example>" not in state.sent, "a ticket's sent log goes with it"
    state = Store(path).load()
    assert len(state.tickets) == 20
    assert state.archived("<q3@example.org>") == "HD-3" and state.archived("HD-3") == f"{NOW:%Y-%m}"
    assert state.archived("<mhd.ack.HD-3@shop.example>") == "HD-3"
    assert state.archived("<robot@news.example>") == "ignored:<robot@news.example>"
    assert state.archived("<q4@example.org>") is None, "HD-4 is open: in the state, not the archive"
    assert Store(path).find("HD-3").subject == "Question 3"
    first, second = list(Store(path).archive.entries())[:2]  # a ticket's line, then its sent log's
    assert first.ticket.key == "HD-3" and second.sent[0].message_id == "<mhd.ack.HD-3@shop.example>"


def test_a_closed_ticket_stays_while_its_conversation_is_recent(tmp_path):
    """Counted from the conversation's last message: closed today after a reply yesterday stays; a year-old
    conversation closed today is history at once."""
    recent = ticket(1, Status.CLOSED, timedelta(days=1))
    old = ticket(2, Status.CLOSED, timedelta(days=365))
    old = old.log(NOW, HistoryEvent.STATUS, "resolved -> closed (label)", closed_at=NOW)
    assert not archive.is_history(recent, NOW) and archive.is_history(old, NOW)
    assert not archive.is_history(ticket(3, Status.RESOLVED, timedelta(days=365)), NOW), "resolved may re-open"


def test_a_ticket_with_mail_still_in_the_outbox_is_not_moved(tmp_path):
    state = a_state()
    state.sent["<mhd.ack.HD-3@shop.example>"] = sent(3, done=False)
    store = Store(tmp_path / "state.json")
    store.save(state)
    store.maintain(state, NOW)
    assert "HD-3" in state.tickets and "HD-6" not in state.tickets


def test_a_schema_1_state_file_is_migrated_on_first_start(tmp_path):
    path = tmp_path / "state.json"
    shutil.copy(FIXTURE, path)
    old = json.loads(path.read_text())
    assert old["meta"]["1"]["schema_version"] == 1 and "1" in old["tickets"]
    store = Store(path)
    state = store.load()
    assert len(state.tickets) == 40 and state.next_number == 41 and state.cursors["INBOX"]["uidnext"] == 300
    assert state.tickets["HD-7"] == decode_v1(old, "HD-7")
    store.maintain(state, NOW)  # the daemon's first pass: closed, quiet tickets go to the archive
    data = json.loads(path.read_text())
    assert data["meta"]["1"]["schema_version"] == SCHEMA_VERSION and "HD-7" in {*data["tickets"], *archived(store)}
    state = Store(path).load()
    closed = [t for t in decode_all_v1(old) if t.status == Status.CLOSED]
    assert closed and all(t.key not in state.tickets for t in closed)
    assert sorted(t.key for t in Store(path).tickets(state)) == sorted(f"HD-{n}" for n in range(1, 41))
    assert (path.parent / "state.json.archive" / f"{NOW:%Y-%m}.jsonl").exists()


def decode_all_v1(old: dict) -> list[Ticket]:
    from mailhelpdesk.store.state import decode

    return [decode(Ticket, row) for row in old["tickets"].values()]


def decode_v1(old: dict, key: str) -> Ticket:
    return next(t for t in decode_all_v1(old) if t.key == key)


def archived(store: Store) -> set[str]:
    return {e.ticket.key for e in store.archive.entries() if e.ticket}


def test_a_reply_to_an_archived_ticket_opens_a_new_one_linked_to_it_and_a_redelivery_opens_none(tmp_path):
    desk = Desk()
    desk.feed("question.eml")
    store = Store(tmp_path / "state.json")
    store.save(desk.state)
    state = store.load()
    later = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
    state.tickets["HD-1"] = state.tickets["HD-1"].log(later, HistoryEvent.STATUS, "closed", status=Status.CLOSED,
                                                      closed_at=later - timedelta(days=9))
    state.tickets["HD-1"] = dataclasses.replace(state.tickets["HD-1"], history=tuple(
        h for h in state.tickets["HD-1"].history if h.what != HistoryEvent.STATUS))
    store.maintain(state, later)
    assert "HD-1" not in state.tickets and state.archived("<q1@customer.example>") == "HD-1"
    desk.state = Store(tmp_path / "state.json").load()
    desk.feed("question.eml", now=later, ref="INBOX:2:1")  # the same mail again (a re-sync): history
    assert desk.state.tickets == {}
    desk.feed("followup.eml", now=later)  # "Re:" the archived conversation, weeks later
    assert list(desk.state.tickets) == ["HD-2"] and desk.ticket("HD-2").related == ("HD-1",)


def saved_with_config(tmp_path: Path) -> tuple[Path, Store, State]:
    """A config for the local backend and `a_state()` saved where it points, loaded back."""
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text('[helpdesk]\naddress = "support@shop.example"\ntimezone = "UTC"\nstate_file = "state.json"\n'
                      '[mailbox]\nbackend = "local"\n')
    store = Store(tmp_path / "state.json")
    store.save(a_state())
    return config, store, store.load()


def test_report_and_tickets_read_the_archive_by_streaming(tmp_path):
    from click.testing import CliRunner

    from mailhelpdesk.app.cli import main

    config, store, state = saved_with_config(tmp_path)
    store.maintain(state, NOW)
    assert len(state.tickets) == 20
    result = CliRunner().invoke(main, ["report", "--config", str(config), "--format", "json", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total"]["opened"] == 30, "the ten archived tickets are counted too"
    result = CliRunner().invoke(main, ["tickets", "HD-3", "--config", str(config), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["key"] == "HD-3", result.output


def test_status_reads_the_last_pass_summary_and_counts_afresh_once_the_state_is_newer(tmp_path):
    from mailhelpdesk.app.commands import show_status
    from mailhelpdesk.app.health import Health, summary

    config, store, state = saved_with_config(tmp_path)
    figures = summary(state, NOW)
    assert (figures["open"], figures["pending"]) == (20, 0)
    health = Health(store.path)
    health.write(last_success=NOW.isoformat(), summary=dict(figures, open=7))  # what a daemon saw
    written = max(store.path.stat().st_mtime_ns, store.journal.path.stat().st_mtime_ns)
    os.utime(health.path, ns=(written, written))  # written right after the state (no clock in the test)
    lines: list[str] = []
    show_status(config, lines.append, now=NOW)
    assert any(line.startswith("open tickets: 7 ") for line in lines), "the daemon's summary, no state loaded"
    state.tickets["HD-1"] = state.tickets["HD-1"].log(NOW, HistoryEvent.AGENT_REPLIED, "alice", status=Status.PENDING)
    store.save(state)  # the state changes after the daemon's last pass
    os.utime(store.journal.path, ns=(written + 10**9, written + 10**9))
    lines = []
    show_status(config, lines.append, now=NOW)
    assert any(line.startswith("open tickets: 19 ") and line.endswith("pending: 1") for line in lines), lines


def test_meta_is_journalled_by_key(tmp_path):
    """A pass that moves a cursor writes that cursor, not the log of every sender acknowledged today."""
    path = tmp_path / "state.json"
    state = a_state()
    for n in range(1000):
        state.sender_log[f"customer{n}@example.org"] = [NOW - timedelta(minutes=n)]
    Store(path).save(state)
    store = Store(path)
    state = store.load()
    state.cursors["INBOX"] = {"uidvalidity": 7, "uidnext": 42}
    state.sender_log["customer5@example.org"].append(NOW)
    del state.sender_log["customer6@example.org"]
    state.quarantine["INBOX:7:3"] = "unreadable"
    store.save(state)
    line = store.journal.path.read_text()
    assert len(line) < 400, line
    again = Store(path).load()
    assert again.cursors["INBOX"] == {"uidvalidity": 7, "uidnext": 42} and again.quarantine == {"INBOX:7:3": "unreadable"}
    assert again.sender_log == state.sender_log and len(again.sender_log["customer5@example.org"]) == 2
    del state.quarantine["INBOX:7:3"]
    store.save(state)
    assert Store(path).load().quarantine == {}


def test_status_is_non_zero_when_a_daemon_ran_and_its_state_is_gone(tmp_path):
    from mailhelpdesk.app.commands import show_status
    from mailhelpdesk.app.health import Health

    config, store, state = saved_with_config(tmp_path)
    Health(store.path).write(last_success=NOW.isoformat(), state_written=True)  # as a daemon's pass leaves it
    lines: list[str] = []
    assert show_status(config, lines.append, now=NOW) == 0
    store.path.unlink()  # lost: the daemon refuses to start until `rebuild`; monitoring must hear of it
    lines = []
    assert show_status(config, lines.append, now=NOW) == 1
    assert any(line.startswith("STATE LOST:") and "mailhelpdesk rebuild" in line for line in lines), lines


def test_a_damaged_line_in_the_middle_of_the_journal_is_refused_not_cut_off(tmp_path):
    """Only the last line can be torn by a kill; a bad line followed by saves is damage: refused, never truncated."""
    import pytest

    from mailhelpdesk.errors import StoreError

    path, store, _ = journalled(tmp_path)
    lines = store.journal.path.read_bytes().splitlines(keepends=True)
    store.journal.path.write_bytes(lines[0][:20] + b"\n" + lines[1])
    with pytest.raises(StoreError, match="journal is damaged at line 1"):
        Store(path).load()
    assert store.journal.path.read_bytes().endswith(lines[1]), "the saves after it are still there"
