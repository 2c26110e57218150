"""Exactly once under crashes: the daemon is killed with SIGKILL at random moments while it works through a few
hundred messages, and restarted, many times. Afterwards every conversation has one ticket, every message we
sent went out once (counted at the SMTP server and in the sent folder) and no label is missing."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clocks import child_env, wait_for
from corpus import AUTOMATIC_KINDS, FREE_MAIL_DOMAINS, build_corpus

from mailhelpdesk.store.state import Store

KILLS = 12
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # the corpus ends here; the daemons' clock starts a minute later
_T0 = time.monotonic()


def clock() -> datetime:
    """The test's clock, injected into every daemon it starts: a fixed day moving on in real seconds."""
    return NOW + timedelta(minutes=1, seconds=time.monotonic() - _T0)


def write_config(path: Path, account, sink, corpus) -> None:
    agents = "".join(f'[[agents]]\nname = "{n}"\nemail = "{e}"\n' for n, e in corpus.agents)
    path.write_text(f"""
[helpdesk]
address = "{corpus.support}"
state_file = "state.json"
free_mail_domains = {list(FREE_MAIL_DOMAINS)!r}  # the corpus's shared people domains (see corpus.FREE_MAIL_DOMAINS)
[mailbox]
backend = "imap"
poll_interval = 1
[imap]
host = "{account.host}"
port = {account.port}
security = "none"
username = "{account.username}"
password_env = "CRASH_TEST_IMAP_PASSWORD"
sent_folder = "Sent"
idle = false
[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
{agents}""")


def start(config: Path) -> subprocess.Popen:
    log = open(config.parent / "daemon.log", "ab")  # kept for a post-mortem when the test fails
    return subprocess.Popen(
        [sys.executable, "-m", "mailhelpdesk.app.cli", "run", "-v", "--config", str(config)],
        cwd=config.parent, stdout=subprocess.DEVNULL, stderr=log,
        env=child_env(clock(), CRASH_TEST_IMAP_PASSWORD=config.with_suffix(".pw").read_text()),
    )


def passes_done(config: Path) -> str:
    try:
        return json.loads((config.parent / "state.json.health").read_text()).get("last_success", "")
    except (OSError, ValueError):
        return ""


def test_sigkill_at_random_moments_never_duplicates_or_loses_work(imap_account, smtp_sink, tmp_path):
    corpus = build_corpus(n_conversations=100, seed=5, now=NOW)
    client = imap_account.client()
    for m in corpus.messages:  # one connection for the whole load
        client.append(m.folder, m.raw, flags=[b"\\Seen"] if m.folder == "Sent" else [], msg_time=m.when)
    config = tmp_path / "mailhelpdesk.toml"
    write_config(config, imap_account, smtp_sink, corpus)
    config.with_suffix(".pw").write_text(imap_account.password)

    rng = random.Random(20261124)
    kills = 0
    progress: list[int] = []  # messages received by the SMTP server at each kill
    # acknowledgements (the first run answers only fresh mail) and one backlog summary per agent
    to_send = sum(1 for c in corpus.conversations if c.expect_ack) + len(corpus.agents)
    assert to_send > 2 * KILLS, "every round must leave mail for the next"
    for round_ in range(KILLS):
        # The server lets one or two more messages through, then stops answering: the daemon cannot run ahead of
        # the kills however fast the machine is, and there is always mail left for the next start.
        smtp_sink.limit(len(smtp_sink.messages) + rng.randint(1, 2))
        process = start(config)
        if round_ % 2:  # while mail goes out: the daemon is inside an SMTP transaction
            assert smtp_sink.wait_held(timeout=60), (config.parent / "daemon.log").read_text()
        else:  # anywhere: starting up, fetching, deciding, labelling, sending
            time.sleep(rng.uniform(0.05, 1.5))
        if process.poll() is not None:
            raise AssertionError((config.parent / "daemon.log").read_text())
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        progress.append(len(smtp_sink.messages))
    smtp_sink.limit(None)
    # finally let it finish: wait for two passes of this last daemon (the health file changes with each), the
    # second one idle
    process = start(config)
    for _ in range(2):
        before = passes_done(config)
        wait_for(lambda: passes_done(config) != before or process.poll() is not None, 120)
        assert process.poll() is None, (config.parent / "daemon.log").read_text()
        assert passes_done(config) != before, "the daemon never completed a pass"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, "a clean stop on SIGTERM (after the pass under way)"

    state = Store(tmp_path / "state.json").load()
    assert kills == KILLS
    final = len(smtp_sink.messages)
    assert any(0 < n < final for n in progress), f"no kill landed while mail was going out: {progress} of {final}"
    # one ticket per conversation
    assert len(state.tickets) == len(corpus.conversations)
    firsts = [c.message_ids[0] for c in corpus.conversations if c.message_ids]
    assert len({state.index[mid] for mid in firsts}) == len(firsts)
    # every message we sent went out exactly once: at the SMTP server ...
    received = Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    assert received and max(received.values()) == 1, [k for k, n in received.items() if n > 1]
    assert set(received) == {mid for mid, r in state.sent.items() if r.done}
    assert all(r.done for r in state.sent.values()), "nothing left in the outbox"
    acks = Counter(str(m.message["To"]) for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement")
    assert acks == Counter(c.customer for c in corpus.conversations if c.expect_ack)
    # ... and in the sent folder
    client.select_folder("Sent", readonly=True)
    ours = client.search(["HEADER", "X-Mailhelpdesk-Ticket", ""])
    headers = client.fetch(ours, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    copies = Counter(
        data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip() for data in headers.values()
    )
    assert copies == Counter(set(received)), "each sent message has exactly one copy in the sent folder"
    # no label missing
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    assert len(uids) == sum(1 for m in corpus.messages if m.folder == "INBOX"), "nothing deleted"
    automatic = {m.message_id for m in corpus.messages if m.kind in AUTOMATIC_KINDS}
    for uid, data in client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).items():
        flags = {f.decode() for f in data[b"FLAGS"]}
        assert "\\Seen" not in flags
        message_id = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().partition(":")[2].strip()
        assert any(f.startswith("Helpdesk/Status/") for f in flags) or "Helpdesk/Ignored" in flags, (uid, flags, message_id, state.index.get(message_id), state.ignored.get(message_id), state.ticket_of(message_id))
        if message_id in automatic and "Helpdesk/Ignored" not in flags:
            assert state.index.get(message_id), "a robot's mail is labelled only as part of a ticket"
