"""A lost state file is never taken for a first run: the daemon refuses to start over a mailbox it has worked on,
says to run `rebuild`, and sends nothing until then. Both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailhelpdesk.errors import StateLostError
from mailhelpdesk.store.rebuild import rebuild_from
from mailhelpdesk.store.state import Store
from test_behaviour import NOW, backend, desk  # noqa: F401  (fixtures)


@pytest.mark.parametrize("loss", ["deleted", "emptied"])
def test_a_lost_state_file_stops_the_daemon_with_one_line_until_rebuild(desk, backend, loss):
    desk.run_pass()
    sent = len(backend.outgoing())
    assert sent > 0
    desk.close()
    path = desk.store.path
    if loss == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")

    later = backend.helpdesk(lambda: NOW + timedelta(minutes=5))
    with pytest.raises(StateLostError) as refused:
        later.run_pass()
    message = str(refused.value)
    assert "mailhelpdesk rebuild" in message and str(path) in message and "\n" not in message
    assert StateLostError.exit_code == 2
    assert len(backend.outgoing()) == sent, "nothing was sent again"
    with pytest.raises(StateLostError):
        later.run_pass(dry_run=True)  # a dry run says the same
    later.close()
    from mailhelpdesk.app.commands import show_status

    config = path.parent / "status.toml"  # `status` as monitoring runs it: non-zero, and it says why
    config.write_text(f'[helpdesk]\naddress = "support@shop.example"\nstate_file = "{path}"\n[mailbox]\nbackend = "local"\n')
    lines: list[str] = []
    assert show_status(config, lines.append, now=NOW + timedelta(minutes=6)) == 1
    assert any(line.startswith("STATE LOST:") for line in lines), lines

    fresh = backend.helpdesk(lambda: NOW + timedelta(minutes=10))
    Store(path).save(rebuild_from(fresh.config, fresh.mailbox, NOW + timedelta(minutes=10)))
    fresh.close()
    again = backend.helpdesk(lambda: NOW + timedelta(minutes=11))
    again.run_pass()
    assert len(backend.outgoing()) == sent
    again.close()


def test_a_first_run_on_an_untouched_mailbox_is_not_refused(desk, backend):
    assert not desk.store.path.exists()
    desk.run_pass()
    assert desk.store.path.stat().st_size > 0 and desk.state.tickets
