"""Lost state: `rebuild` recovers tickets, statuses, assignees, priorities and the sent log from the mailbox,
and the next pass sends nothing twice. Both backends."""

from __future__ import annotations

from datetime import timedelta

from mailhelpdesk.store.rebuild import rebuild_from
from mailhelpdesk.store.state import Store
from test_behaviour import NOW, OPEN, RESOLVED, backend, desk, eml  # noqa: F401  (fixtures)


def snapshot(state):
    return {k: (t.customer, t.status.value, t.priority.value, t.assignee, t.first_response_at is not None)
            for k, t in state.tickets.items()}


def test_rebuild_after_losing_the_state_file_sends_nothing_twice(desk, backend):
    desk.run_pass()
    backend.deliver(eml("agent_reply.eml"), NOW, sent=True)
    desk.run_pass()
    backend.agent_relabels(desk.refs["urgent.eml"], add={RESOLVED}, remove={OPEN})
    desk.run_pass()  # the resolution notice goes out
    before = snapshot(desk.state)
    sent = len(backend.outgoing())
    labels = backend.all_labels()
    desk.close()

    path = desk.store.path
    path.unlink()  # the state is lost
    fresh = backend.helpdesk(lambda: NOW + timedelta(minutes=10))
    state = rebuild_from(fresh.config, fresh.mailbox, NOW + timedelta(minutes=10))
    assert snapshot(state) == before
    assert {r.kind for r in state.sent.values()} >= {"acknowledgement", "resolution"}  # first run: no notices
    Store(path).save(state)

    again = backend.helpdesk(lambda: NOW + timedelta(minutes=11))
    report = again.run_pass()
    assert not [line for line in report.done if line.startswith("send")]
    assert len(backend.outgoing()) == sent
    assert backend.all_labels() == labels
    assert snapshot(again.state) == before
    again.close()


def test_a_damaged_state_file_gives_a_clear_message(tmp_path):
    import pytest

    from mailhelpdesk.errors import StoreError

    path = tmp_path / "state.json"
    path.write_text('{"tickets": {"1": {"key": ')
    with pytest.raises(StoreError, match="damaged.*mailhelpdesk rebuild"):
        Store(path).load()


def test_a_state_file_cut_short_is_refused_not_half_loaded(tmp_path):
    import pytest

    from mailhelpdesk.errors import StoreError
    from mailhelpdesk.model import State, Ticket

    path = tmp_path / "state.json"
    tickets = {f"HD-{n}": Ticket(key=f"HD-{n}", number=n, customer="a@b.example", subject="s", created_at=NOW) for n in range(1, 50)}
    Store(path).save(State(tickets=tickets, next_number=50))
    assert len(Store(path).load().tickets) == 49
    text = path.read_text()
    path.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")  # cut at a line boundary
    with pytest.raises(StoreError, match="damaged"):
        Store(path).load()
