"""The archive mends itself (issue 16, item 6), moment by moment: a move repeated after a kill appends nothing
again, a torn line stays alone, an index deleted or damaged is rebuilt and says so, an index an older version
wrote is adopted without a word. The kills themselves: tests/contract/test_store_kills.py."""

from __future__ import annotations

import json
import shutil

from mailhelpdesk.store.state import Store
from test_store import NOW, a_state


def ticket_lines(store: Store) -> list[str]:
    return [e.ticket.key for e in store.archive.entries() if e.ticket is not None]


def test_a_move_repeated_after_a_kill_before_the_save_appends_nothing(tmp_path):
    path = tmp_path / "state.json"
    Store(path).save(a_state())
    for _ in range(3):  # three starts, each killed after the archive was written and before the state was saved
        store = Store(path)
        state = store.load()
        store.move_history(state, NOW)  # no save: the state on disk still holds the tickets
    store = Store(path)
    state = store.load()
    assert store.maintain(state, NOW) == 11, "the state drops what the archive holds"
    keys = ticket_lines(Store(path))
    assert sorted(keys) == sorted(f"HD-{n}" for n in range(3, 31, 3)), keys
    assert not {f"HD-{n}" for n in range(3, 31, 3)} & set(Store(path).load().tickets)


def test_lines_the_state_may_still_hold_are_carried_until_the_state_drops_them(tmp_path):
    """Killed twice in a row, the second move bringing a new ticket: the first batch is still recognised."""
    import dataclasses

    from mailhelpdesk.model import Status

    path = tmp_path / "state.json"
    Store(path).save(a_state())
    store = Store(path)
    store.move_history(store.load(), NOW)  # killed before the save
    store = Store(path)
    state = store.load()
    late = state.tickets["HD-1"]
    state.tickets["HD-1"] = dataclasses.replace(late, status=Status.CLOSED, history=state.tickets["HD-3"].history)
    store.save(state)
    store.move_history(state, NOW)  # the first batch again, and HD-1: killed before the save again
    store = Store(path)
    store.maintain(store.load(), NOW)
    keys = ticket_lines(Store(path))
    assert sorted(keys) == sorted(["HD-1", *(f"HD-{n}" for n in range(3, 31, 3))]), keys


def test_a_torn_line_stays_alone_and_the_next_move_is_read_whole(tmp_path):
    path = tmp_path / "state.json"
    Store(path).save(a_state())
    month = tmp_path / "state.json.archive" / f"{NOW:%Y-%m}.jsonl"
    month.parent.mkdir()
    month.write_text('{"ticket":{"key":"HD-3","subj')  # a power cut in the middle of a line
    store = Store(path)
    store.maintain(store.load(), NOW)
    assert month.read_text().startswith('{"ticket":{"key":"HD-3","subj\n'), "nothing of it is cut away"
    assert sorted(ticket_lines(Store(path))) == sorted(f"HD-{n}" for n in range(3, 31, 3))


def archived(tmp_path):
    path = tmp_path / "state.json"
    store = Store(path)
    store.save(a_state())
    store.maintain(store.load(), NOW)
    return path, store.archive.index_folder


def test_an_index_an_older_version_wrote_is_adopted_without_a_repair(tmp_path):
    path, index = archived(tmp_path)
    (index / "covers.json").unlink()  # as the archive was before covers.json
    store = Store(path)
    state = store.load()
    assert store.repairs == [] and state.archived("<q3@example.org>") == "HD-3"
    assert json.loads((index / "covers.json").read_text())["months"] == {f"{NOW:%Y-%m}": store.archive.months()[0].stat().st_size}


def test_an_index_with_something_appended_by_another_hand_is_rebuilt(tmp_path):
    path, index = archived(tmp_path)
    bucket = next(index.glob("*.tsv"))
    bucket.write_text(bucket.read_text() + "<q3@example.org>\tHD-999\n")
    store = Store(path)
    state = store.load()
    assert len(store.repairs) == 1 and "damaged" in store.repairs[0], store.repairs
    assert state.archived("<q3@example.org>") == "HD-3", "the archive's own word wins again"


def test_an_index_deleted_under_a_running_daemon_comes_back_at_the_next_lookup(tmp_path, caplog):
    path = tmp_path / "state.json"
    store = Store(path)
    store.save(a_state())
    state = store.load()
    store.maintain(state, NOW)
    shutil.rmtree(store.archive.index_folder)
    assert state.archived("<q6@example.org>") == "HD-6"
    assert any("was missing" in r for r in store.repairs) and "archive index was missing" in caplog.text
