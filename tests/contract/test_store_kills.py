"""The store cleans up after itself (issue 16, item 6), proven with real SIGKILLs: a child process drives `Store`
through archive moves and compactions and kills itself at a named point (the hook lives here, in the harness,
never in the package); the next start leaves no temp file, and the archive holds each ticket once. A deleted or
damaged archive index comes back at start: a reply to an archived ticket links to it, `tickets KEY` finds it.

Run as a script (`python test_store_kills.py STATE POINT ROUND`) this file is the child."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TICKETS = 40
KILLS = 25

# Where the child stops itself. Each is one moment of a move or a compaction a kill can land in.
POINTS = (
    "month-appended",  # the tickets' lines are in the month file, the index knows nothing of them
    "month-torn",  # half a line written (a power cut: a kill cannot split one write)
    "index-half",  # the second of the index buckets appended, the rest not
    "before-covers",  # lines and index written, covers.json not yet
    "before-save",  # the archive is complete, the state has not dropped the tickets (the measured duplicates)
    "compaction-written",  # the temp file holds the whole state, fsynced, not renamed (the measured temp files)
    "compaction-created",  # the temp file just made, nothing in it yet
    "journal-restart",  # the state file renamed, the new empty journal not yet
)


def child(state: str, point: str, round_: int) -> None:
    """Load, add two closed, quiet tickets (so every round has a move to make), then maintain and compact as the
    daemon does, killing ourselves at `point`."""
    from mailhelpdesk.store import archive
    from mailhelpdesk.store import state as store
    from mailhelpdesk.model import HistoryEntry, HistoryEvent, Status, Ticket

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    s = store.Store(state)
    st = s.load()
    for n in (st.next_number, st.next_number + 1):
        at = NOW - timedelta(days=10)
        st.tickets[f"HD-{n}"] = Ticket(key=f"HD-{n}", number=n, customer=f"c{n}@example.org", subject=f"Q {n}",
                                       created_at=at, status=Status.CLOSED, closed_at=at,
                                       message_ids=(f"<q{n}@example.org>",), refs=(f"INBOX:1:{n}",),
                                       history=(HistoryEntry(at, HistoryEvent.CREATED, ""),))
        st.next_number = n + 1
    st.rebuild_index()
    s.save(st)

    real_append, real_replace, real_pwrite = archive._append, os.replace, os.pwrite
    buckets = {"n": 0}

    def append(path, text):
        if point == "month-torn" and path.suffix == ".jsonl":
            os.pwrite = lambda fd, data, offset: (real_pwrite(fd, bytes(data)[:len(data) // 2], offset), die())
        result = real_append(path, text)
        if point == "month-appended" and path.suffix == ".jsonl":
            die()
        if path.suffix == ".tsv":
            buckets["n"] += 1
            if point == "index-half" and buckets["n"] == 2:
                die()
        return result

    def replace(src, dst):
        name = os.path.basename(src)
        if point == "before-covers" and name == archive.COVERS + ".new":
            die()
        if point == "compaction-written" and name.endswith(store.TEMP_SUFFIX):
            die()
        if point == "journal-restart" and name.endswith(".journal.new"):
            die()
        return real_replace(src, dst)

    real_mkstemp = store.tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        if point == "compaction-created":
            die()
        return made

    real_save = store.Store.save

    def save(self, state):
        if point == "before-save":
            die()
        return real_save(self, state)

    archive._append, os.replace, store.tempfile.mkstemp, store.Store.save = append, replace, mkstemp, save
    s.maintain(st, NOW)
    s.compact(st)  # as when the journal has grown
    print(json.dumps({"repairs": s.repairs}))


def run_child(state: Path, point: str, round_: int) -> subprocess.CompletedProcess:
    from clocks import child_env

    return subprocess.run([sys.executable, __file__, str(state), point, str(round_)], capture_output=True, text=True,
                          env=child_env(NOW), timeout=120)


def temp_files(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(".state.json.") or n.endswith(".new"))


def archive_lines(state: Path) -> Counter:
    """How many ticket lines the archive holds for each key."""
    found: Counter = Counter()
    for path in sorted((state.parent / "state.json.archive").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn line a power cut left, alone on its line
            if "ticket" in data:
                found[data["ticket"]["key"]] += 1
    return found


def test_killed_moves_and_compactions_leave_no_temp_files_and_each_ticket_once(tmp_path):
    from test_store import a_state

    from mailhelpdesk.store.state import Store

    state = tmp_path / "state.json"
    first = a_state(TICKETS)  # ten of them closed and quiet: history at the first move
    Store(state).save(first)
    kills, left_over = 0, []
    for round_ in range(KILLS):
        point = POINTS[round_ % len(POINTS)]
        result = run_child(state, point, round_)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr)
        kills += 1
        left_over.append(len(temp_files(tmp_path)))
    assert kills == KILLS
    assert max(left_over) >= 1, "some kill left a temp file for the next start to remove"
    finished = run_child(state, "nowhere", KILLS)  # the next start, not killed
    assert finished.returncode == 0, finished.stderr
    repairs = json.loads(finished.stdout)["repairs"]
    assert temp_files(tmp_path) == [], "no temp file left"

    store = Store(state)
    loaded = store.load()
    counts = archive_lines(state)
    history = {f"HD-{n}" for n in range(3, TICKETS + 1, 3)} | {f"HD-{n}" for n in range(TICKETS + 1, loaded.next_number)}
    assert set(counts) == history and set(counts.values()) == {1}, {k: n for k, n in counts.items() if n > 1}
    assert not history & set(loaded.tickets), "what moved is no longer in the state"
    everyone = [t.key for t in store.tickets(loaded)]
    assert len(everyone) == len(set(everyone)) == loaded.next_number - 1, "every ticket once, none lost"
    for key in history:  # each archived ticket is indexed: its mail is recognised, `tickets KEY` finds it
        assert loaded.archived(f"<q{key[3:]}@example.org>") == key and store.find(key).key == key
    assert repairs == [] or all("archive" in r or "temp file" in r for r in repairs), repairs


def test_a_reader_during_a_compaction_leaves_the_daemons_temp_file_alone(tmp_path):
    """`tickets` runs while the daemon compacts: the daemon's temp file is in flight (held, not renamed); the
    reader's store removes nothing, and the compaction then completes."""
    from click.testing import CliRunner
    from test_store import saved_with_config

    from mailhelpdesk.app.cli import main
    from mailhelpdesk.store.state import Store

    config, store, _ = saved_with_config(tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", PAUSED_COMPACTION, str(store.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        in_flight = writer.stdout.readline().strip()  # the child says so once its temp file is written
        assert in_flight and (tmp_path / in_flight).exists(), in_flight
        reader = Store(store.path)
        reader.load()
        assert reader.repairs == [] and (tmp_path / in_flight).exists(), "a reader never takes a live writer's file"
        result = CliRunner().invoke(main, ["tickets", "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / in_flight).exists()
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
        writer.wait()
    assert not (tmp_path / in_flight).exists() and temp_files(tmp_path) == []
    assert Store(store.path).load().tickets["HD-1"].subject == "compacted", "the compaction completed"


PAUSED_COMPACTION = """
import os, sys
from mailhelpdesk.store import state as store
import dataclasses
real = os.replace
def replace(src, dst):
    if str(src).endswith(store.TEMP_SUFFIX):
        print(os.path.basename(src), flush=True)
        sys.stdin.readline()
    return real(src, dst)
os.replace = replace
s = store.Store(sys.argv[1])
state = s.load()
state.tickets["HD-1"] = dataclasses.replace(state.tickets["HD-1"], subject="compacted")
s.compact(state)
"""


def test_a_killed_writer_leaves_a_temp_file_the_next_store_removes_and_nothing_else(tmp_path):
    """Only our own temp files, by their exact names: a user's files beside the state stay, whatever they hold."""
    from test_store import a_state

    from mailhelpdesk.store.state import Store

    state = tmp_path / "state.json"
    Store(state).save(a_state())
    result = run_child(state, "compaction-written", 0)
    assert result.returncode == -signal.SIGKILL, result.stderr
    left = temp_files(tmp_path)
    assert len(left) == 1 and left[0].endswith(".tmp"), left
    theirs = {".state.json.backup": "{\n\"tickets\": {", ".state.json.20261124": "notes", "state.json.bak": "{\n",
              ".state.json.abcdefgh": "", "state.json.journal.new": "not empty"}  # the last two: a probe, a user's
    for name, text in theirs.items():
        (tmp_path / name).write_text(text)
    shutil.copy(state, tmp_path / ".state.json.a1b2c3d4")  # an older version's leftover: a state copy, no .tmp
    store = Store(state)
    store.load()
    assert not (tmp_path / left[0]).exists() and not (tmp_path / ".state.json.a1b2c3d4").exists()
    assert {n: (tmp_path / n).read_text() for n in theirs} == theirs, "nothing else is touched"
    assert len(store.repairs) == 1 and "removed 2 temp file(s)" in store.repairs[0], store.repairs
    assert Store(state).load() and Store(state).repairs == [], "said once: nothing left to remove"


def archived_ticket(desk, backend):
    """The daemon archives a ticket an agent closed (as in test_archive_rebuild); returns it and the later time."""
    from mailhelpdesk.model import HistoryEvent, Status
    from test_behaviour import NOW

    later = NOW + timedelta(days=9)
    desk.run_pass()
    urgent = desk.state.ticket_of("<u1@bigstore.example>")
    closed = urgent.log(NOW, HistoryEvent.STATUS, "open -> closed (label)", status=Status.CLOSED, closed_at=NOW)
    desk.state.tickets[urgent.key] = closed
    desk.save()
    assert desk.store.maintain(desk.state, later) >= 1
    assert desk.state.archived("<u1@bigstore.example>") == urgent.key
    desk.close()
    return urgent, later


def damage_deleted(index: Path) -> str:
    shutil.rmtree(index)
    return "was missing"


def damage_bucket(index: Path) -> str:
    biggest = max(index.glob("*.tsv"), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 3])  # cut short (a bad restore, a disk)
    return "was damaged"


if __name__ != "__main__":  # the child needs none of the servers
    from test_behaviour import backend, desk, eml  # noqa: F401  (fixtures)


@pytest.mark.parametrize("damage", [damage_deleted, damage_bucket])
def test_a_deleted_or_damaged_archive_index_comes_back_at_start(desk, backend, damage, tmp_path):
    from click.testing import CliRunner

    from mailhelpdesk.app.cli import main
    from mailhelpdesk.store.state import Store

    urgent, later = archived_ticket(desk, backend)
    index = desk.store.path.with_name("state.json.archive") / "index"
    said = damage(index)

    again = backend.helpdesk(lambda: later + timedelta(minutes=1))  # the daemon's start
    assert any(said in r and "rebuilt" in r for r in again.store.repairs), again.store.repairs
    assert again.state.archived("<u1@bigstore.example>") == urgent.key
    reply = eml("urgent.eml").replace(b"<u1@bigstore.example>", b"<u9@bigstore.example>")
    reply = reply.replace(b"Subject: URGENT", b"In-Reply-To: <u1@bigstore.example>\r\nSubject: Re: URGENT")
    backend.deliver(reply, later)
    again.run_pass()
    new = again.state.ticket_of("<u9@bigstore.example>")
    assert new is not None and new.related == (urgent.key,), "a reply to the archived ticket links to it again"
    again.close()
    (tmp_path / "cli.toml").write_text(f'[helpdesk]\naddress = "support@shop.example"\n'
                                       f'state_file = "{desk.store.path}"\n[mailbox]\nbackend = "local"\n')
    result = CliRunner().invoke(main, ["tickets", urgent.key, "--config", str(tmp_path / "cli.toml"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["key"] == urgent.key, result.output
    assert Store(desk.store.path).load() and Store(desk.store.path).repairs == [], "repaired once"
    status = CliRunner().invoke(main, ["status", "--config", str(tmp_path / "cli.toml")])
    repaired = [line for line in status.output.splitlines() if line.startswith("repaired at ")]
    assert len(repaired) == 1 and said in repaired[0] and "rebuilt" in repaired[0], status.output  # status says so


def test_an_index_deleted_while_a_command_reads_is_rebuilt_for_tickets_key(tmp_path):
    """No daemon started since: `tickets KEY` (its own store) rebuilds the index and finds the archived key."""
    from click.testing import CliRunner
    from test_store import saved_with_config

    from mailhelpdesk.app.cli import main

    config, store, state = saved_with_config(tmp_path)
    store.maintain(state, NOW)
    shutil.rmtree(store.archive.index_folder)
    result = CliRunner().invoke(main, ["tickets", "HD-3", "--config", str(config), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["key"] == "HD-3", result.output
    assert (store.archive.index_folder / "covers.json").exists()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
