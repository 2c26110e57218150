"""A broken template never stops the helpdesk (issue 9, item 9): a user's template that fails to render is replaced
by the packaged one of the same name, a warning names the file and line, and `status` shows the error. A template
that tries to leave the sandbox is still refused (tests/test_hostile.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from mailhelpdesk.app.commands import show_status
from mailhelpdesk.core.engine import TEMPLATE_ERROR
from mailhelpdesk.errors import ConfigError
from mailhelpdesk.model import State
from mailhelpdesk.store.state import Store
from test_engine import NOW, Desk, make_config

BROKEN = {
    "syntax": "Subject: Thanks [{{ ticket.key }}]\n\nDear customer,\n{{ ticket.key \n",  # unclosed: line 4
    "undefined": "Subject: Thanks [{{ ticket.key }}]\n\nDear {{ ticket.no_such_field }}\n",  # fails at line 3
    "no subject": "Thanks for your mail {{ ticket.key }}\n",
}


def desk_with(tmp_path, text: str, name: str = "acknowledgement.txt.j2") -> Desk:
    (tmp_path / "en").mkdir(exist_ok=True)
    (tmp_path / "en" / name).write_text(text)
    return Desk(make_config(helpdesk={"templates_dir": str(tmp_path)}))


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_user_template_falls_back_to_the_packaged_one(kind, tmp_path, caplog):
    desk = desk_with(tmp_path, BROKEN[kind])
    desk.feed("question.eml")
    with caplog.at_level(logging.WARNING, logger="mailhelpdesk"):
        plan = desk.tick()
    (ack,) = desk.sends("acknowledgement")  # the pass went on: the customer is acknowledged
    reference = Desk()
    reference.feed("question.eml")
    reference.tick()
    assert (ack.subject, ack.body) == (reference.sends("acknowledgement")[0].subject,
                                       reference.sends("acknowledgement")[0].body)
    assert "Helpdesk/Status/Open" in desk.ticket().labels_applied
    error = plan.cursors[TEMPLATE_ERROR]
    assert error["at"] == NOW.isoformat() and "acknowledgement.txt.j2" in error["error"]
    assert desk.state.cursors[TEMPLATE_ERROR] == error
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and "acknowledgement.txt.j2" in warning[0] and "packaged" in warning[0]
    if kind == "syntax":
        assert str(tmp_path / "en" / "acknowledgement.txt.j2") in error["error"] and "line 4" in error["error"]
    if kind == "undefined":
        assert "line 3" in error["error"]


def test_a_good_user_template_is_used_and_reports_nothing(tmp_path):
    desk = desk_with(tmp_path, "Subject: We got it [{{ ticket.key }}]\n\nOurs, truly.\n")
    desk.feed("question.eml")
    plan = desk.tick()
    (ack,) = desk.sends("acknowledgement")
    assert ack.subject.startswith("We got it") and "Ours, truly." in ack.body
    assert TEMPLATE_ERROR not in plan.cursors and TEMPLATE_ERROR not in desk.state.cursors


def test_a_sandbox_escape_is_still_refused_not_replaced(tmp_path):
    desk = desk_with(tmp_path, "Subject: hi\n{{ cycler.__init__.__globals__.os }}")
    desk.feed("question.eml")
    with pytest.raises(ConfigError):
        desk.tick()


def test_a_broken_template_the_package_does_not_have_fails_that_mail_only_and_is_reported(tmp_path):
    """A custom template name (`[autoreply] template`) has no packaged fallback: that ticket's duty fails (its
    history says why, the pass goes on) and `status` is told."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "my_ack.txt.j2").write_text("Subject: hi {{ ticket.nope }}\n")
    desk = Desk(make_config(helpdesk={"templates_dir": str(tmp_path)}, autoreply={"template": "my_ack"}))
    desk.feed("question.eml")
    plan = desk.tick()
    assert desk.sends("acknowledgement") == []
    assert "my_ack.txt.j2" in desk.ticket().history[-1].detail
    assert "my_ack.txt.j2" in plan.cursors[TEMPLATE_ERROR]["error"]


def test_status_shows_the_template_error(tmp_path):
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text('[helpdesk]\naddress = "support@shop.example"\ntimezone = "UTC"\nstate_file = "state.json"\n'
                      '[mailbox]\nbackend = "local"\n')
    state = State()
    state.cursors[TEMPLATE_ERROR] = {"at": (NOW - timedelta(hours=1)).isoformat(), "count": 1,
                                     "error": "/etc/t/en/acknowledgement.txt.j2, line 4: unexpected end of template "
                                              "(the packaged acknowledgement template was used instead)"}
    Store(tmp_path / "state.json").save(state)
    lines: list[str] = []
    show_status(config, lines.append, now=NOW)
    (line,) = [line for line in lines if line.startswith("TEMPLATE ERROR")]
    assert "acknowledgement.txt.j2, line 4" in line and "packaged" in line
    lines.clear()
    show_status(config, lines.append, now=NOW + timedelta(days=2))  # a day after the last failure: fixed
    assert not [line for line in lines if line.startswith("TEMPLATE ERROR")]
