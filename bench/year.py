"""A year of a busy helpdesk (issue 10): per-mail cost, commands and memory at 10k / 100k / 365k tickets of history.

The history is in the archive, and 5,000 tickets not yet closed are in the working set.

For each size the state is built directly (not through the daemon) on a real private Dovecot account with an SMTP
sink (127.0.0.1 only):
  * one daemon pass over the empty mailbox first, so the cursors, the Message-ID secret and `last_pass` are what
    the IMAP adapter writes and no old mail is imported;
  * the history: closed tickets like bench/store.py's (2-5 messages, a thread, 6-11 history entries, an
    acknowledgement and an assignment notice each), appended to `<state>.archive/` month by month over the last
    12 months, in exactly the bytes `Archive.add` writes (checked against `Archive.add` on a sample before each
    run), so ~1.3 M Message-IDs at 365k;
  * the working set: `--open` tickets open / pending / resolved of the last 5 days with their sent records,
    consistent labels and records, the last day's per-sender log (nothing for the timed duties to do), saved with
    `Store.compact`.
Then, measured:
  * state file, journal, archive (and its index) sizes; `Store.load` (a subprocess, median of --repeat);
  * a daemon process (a subprocess, in-process `Helpdesk.run_pass`): `--mails` new customer mails, each APPENDed to
    INBOX and then one pass timed (fetch, decide, label, acknowledge over SMTP, save) plus the pass after it;
    `--replies` customer replies into open tickets; `--labels` agent label changes; replies to ARCHIVED tickets
    (each must open a new ticket whose `related` names the archived one); the journal bytes each pass wrote; the
    wall and CPU time of each pass; the process's peak RSS (GNU time's %M, and VmHWM from inside);
  * `mailhelpdesk run --once` with nothing new, `tickets`, `status`, `report --since <a year ago>` as subprocesses
    (wall time, peak RSS from /usr/bin/time, else wait4; median of --repeat); also `tickets --json`, `tickets <archived key>` and a
    report computed over `Store.tickets()` (the working set, then the archive streamed) as a reference for what a
    report over the whole year costs.
Prints the issue's table, whether the per-mail cost is flat (within 1.5x) and which targets are met.

The sizes are measured interleaved (all states are built first, then the daemon rounds and the command runs go
size after size), so that other work on the machine weighs on every size alike; CPU times are printed beside wall
times for the same reason.

Run: python bench/year.py [--history 10000,100000] [--open 5000] [--repeat 3] [--mails 20] [--rounds 2] [--profile]
The default (10k, 100k) takes about 3 minutes on 2 CPUs. `--history 10000,100000,365000` takes about 8-12 minutes
and 1.4 GB of disk in $TMPDIR: the 365k history is 2 M Message-IDs (tickets' and sends'), a 1.05 GB archive with a
185 MB index, generated in about a minute, and `report` over it runs ~40 s a time (x3, and once more with --profile).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c

TARGET_MAIL_P95 = 0.3  # s, a new mail labelled and acknowledged after the daemon sees it
TARGET_COMMAND = 0.5  # s, run --once with nothing new, tickets, status
TARGET_DAEMON_RSS = 150  # MB
TARGET_REPORT_S, TARGET_REPORT_MB = 20, 200
FLAT = 1.5
CURSOR_PASS_BYTES = 4096  # a journal line for a pass whose only change is the cursors: a few hundred bytes of them
DAY = timedelta(days=1)
DOMAINS = ["gmail.com", "example.org", "shop.example", "mail.ru"]


# ------------------------------------------------------------------------------------------------ config


def config_data(account: Any, sink: Any, home: Path) -> dict[str, Any]:
    """The IMAP backend's config, as bench/_common.imap_config writes it (acknowledgements and notices on)."""
    return {
        "helpdesk": {"address": c.SUPPORT, "name": "Bench Support", "timezone": "Europe/Vienna",
                     "state_file": str(home / "state.json")},
        "mailbox": {"backend": "imap"},
        "imap": {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                 "password": account.password, "sent_folder": "Sent"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
        "agents": c.AGENTS,
    }


def write_toml(path: Path, data: dict[str, Any]) -> None:
    """A small TOML writer for the config above (strings, ints, bools; [[agents]])."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))  # a JSON string is a TOML basic string for these values

    lines = []
    for section, values in data.items():
        if section == "agents":
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items()]
        lines.append("")
    for agent in data.get("agents", ()):
        lines.append("[[agents]]")
        lines += [f"{k} = {value(v)}" for k, v in agent.items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.chmod(0o600)


# ------------------------------------------------------------------------------------------------ history


class HistoryWriter:
    """Closed tickets appended to the archive month by month, in exactly the bytes `Archive.add` writes for
    `Entry(ticket=..., sent=(ack, assignment))` with `now` in that month, without building dataclasses: the
    encoded documents are made from templates (`store.encode` of a default Ticket / SentRecord, so the keys are
    in the dataclasses' order) and the index lines from `Entry.names()`'s order and the archive's own `_bucket`."""

    def __init__(self, archive: Any, now: datetime, count: int, samples: int = 3, seed: int = 7):
        from mailhelpdesk.model import SentRecord, Ticket
        from mailhelpdesk.store.state import encode

        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        self.ticket_template = encode(Ticket(key="", number=0, customer="", subject="", created_at=epoch))
        self.sent_template = encode(SentRecord("", "", "", "", "", epoch))
        self.archive, self.now, self.count = archive, now, count
        self.rng = random.Random(seed)
        self.message_ids = 0
        self.index_lines = 0
        self.samples: list[dict[str, Any]] = []  # a few archived tickets to reply to, oldest to newest
        self.pick = {min(count - 1, int((j + 0.5) * count / samples)) for j in range(samples)}

    def ticket(self, number: int, archived_at: datetime) -> tuple[dict, list[dict]]:
        rng = self.rng
        key = f"HD-{number}"
        closed = archived_at - timedelta(days=7, seconds=rng.randint(60, 86400))
        lifetime = rng.randint(3600, 6 * 86400)
        created = closed - timedelta(seconds=lifetime)
        customer = f"customer{rng.randint(1, max(2, self.count // 2))}@{rng.choice(DOMAINS)}"
        agent = c.AGENTS[number % len(c.AGENTS)]
        priority = rng.choice(("normal",) * 6 + ("high", "low", "urgent"))
        k = rng.randint(2, 5)
        message_ids = [f"<CA{rng.getrandbits(128):032x}@mail.gmail.com>" for _ in range(k)]
        refs = [f"INBOX:1700000000:{number * 5 + i}" for i in range(k)]
        thread = f"{rng.getrandbits(60):x}"
        iso = lambda d: d.isoformat()  # noqa: E731
        first_response = created + timedelta(seconds=rng.randint(300, 4 * 3600))
        resolved = created + timedelta(seconds=int(lifetime * 0.8))
        history = [{"at": iso(created), "what": "created", "detail": f"priority {priority} (default)"},
                   {"at": iso(created), "what": "assigned", "detail": f"{agent['name']} (round_robin)"},
                   {"at": iso(created + timedelta(seconds=3)), "what": "acknowledged", "detail": customer}]
        at, step = created, lifetime * 0.7 / k
        for i in range(1, k + rng.randint(0, 2)):
            at += timedelta(seconds=int(step))
            who = ("agent replied", agent["name"]) if i % 2 else ("customer replied", customer)
            history.append({"at": iso(at), "what": who[0], "detail": who[1]})
        history += [{"at": iso(resolved), "what": "status", "detail": "open -> resolved (label)"},
                    {"at": iso(closed), "what": "status", "detail": "resolved -> closed (quiet for 3d)"}]
        doc = dict(self.ticket_template)
        doc.update(
            key=key, number=number, customer=customer, subject=f"Order {rng.randint(10**5, 10**6)}: where is my parcel?",
            created_at=iso(created), customer_name=f"Customer {number}", status="closed", priority=priority,
            assignee=agent["name"], updated_at=iso(closed), first_response_at=iso(first_response),
            resolved_at=iso(resolved), closed_at=iso(closed), due_at=iso(created + DAY),
            rating=rng.choice((None, None, None, "good", "bad")), message_ids=message_ids, refs=refs,
            labels_applied=[f"Helpdesk/Assignee/{agent['name']}", f"Helpdesk/Priority/{priority.title()}",
                            "Helpdesk/Status/Closed"],
            participants=[customer, agent["email"]], thread_ids=[thread], history=history,
            recorded=f"-|resolved@{iso(resolved)}",
        )
        sent = []
        for kind, prefix, to in (("acknowledgement", "ack", customer), ("assignment", "assigned", agent["email"])):
            record = dict(self.sent_template)
            mid = f"<mhd.{rng.getrandbits(64):016x}.{key}@example.com>"
            record.update(key=f"{prefix}:{key}", message_id=mid, to=to, kind=kind, ticket=key,
                          at=iso(created + timedelta(seconds=3)), done=True)
            sent.append(record)
        return doc, sent

    @staticmethod
    def names(doc: dict, sent: list[dict]):
        """Entry.names() of Entry(ticket=doc, sent=sent), in its order."""
        key = doc["key"]
        yield key, ""
        for message_id in doc["message_ids"]:
            yield message_id, key
        for thread in doc["thread_ids"]:
            yield "thread:" + thread, key
        for ref in doc["refs"]:
            yield "ref:" + ref, key
        for record in sent:
            yield record["message_id"], record["ticket"] or "sent:"

    def write_month(self, folder: Path, month_now: datetime, docs: list[tuple[dict, list[dict]]]) -> None:
        """What Archive.add(entries, month_now) writes, for these (ticket, sent) documents."""
        from mailhelpdesk.store import archive

        month = f"{month_now:%Y-%m}"
        lines, names = [], {}
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        bucket, clean = archive._bucket, archive._clean
        for doc, sent in docs:
            lines.append(dumps({"ticket": doc}) + "\n")
            if sent:  # a ticket's sent log on a line of its own, after it
                lines.append(dumps({"sent": sent}) + "\n")
            for name, value in self.names(doc, sent):
                names.setdefault(bucket(name), []).append(f"{clean(name)}\t{value or month}\n")
        if not lines:
            return
        (folder / "index").mkdir(parents=True, exist_ok=True)
        _append(folder / f"{month}.jsonl", "".join(lines))
        for name, rows in names.items():
            _append(folder / "index" / f"{name}.tsv", "".join(rows))
            self.index_lines += len(rows)
        _fsync(folder)

    def check_format(self, tmp: Path) -> None:
        """The bulk writer's bytes equal Archive.add's for a sample of tickets (else the bench would measure
        another format than the product's)."""
        from mailhelpdesk.store.archive import Archive, Entry
        from mailhelpdesk.model import SentRecord, Ticket
        from mailhelpdesk.store.state import decode, encode

        saved = self.rng.getstate()
        when = self.now - 40 * DAY
        docs = [self.ticket(i, when) for i in range(1, 31)]
        self.rng.setstate(saved)
        ours, theirs = tmp / "check-ours", tmp / "check-archive"
        self.write_month(ours, when, docs)
        self.index_lines = 0
        entries = [Entry(ticket=decode(Ticket, d), sent=tuple(decode(SentRecord, s) for s in sent)) for d, sent in docs]
        Archive(theirs, encode, decode).add(entries, when)
        files = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
        mine = sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
        if files != mine or any((ours / f).read_bytes() != (theirs / f).read_bytes() for f in files):
            raise SystemExit("bench/year.py: the generated archive differs from what Archive.add writes; "
                             "update HistoryWriter to the archive's format")
        shutil.rmtree(ours)
        shutil.rmtree(theirs)

    def write(self, folder: Path) -> None:
        """`count` tickets, archived evenly over the 365 days before `now` (less a day), month by month."""
        start, span = self.now - 365 * DAY, (364 * DAY).total_seconds()
        batch: list[tuple[dict, list[dict]]] = []
        month, month_now = None, None
        for i in range(self.count):
            archived_at = (start + timedelta(seconds=int(span * (i + 0.5) / self.count))).replace(microsecond=0)
            this = (archived_at.year, archived_at.month)
            if this != month and batch:
                self.write_month(folder, month_now, batch)
                batch = []
            month, month_now = this, archived_at
            doc, sent = self.ticket(i + 1, archived_at)
            self.message_ids += len(doc["message_ids"]) + len(sent)
            batch.append((doc, sent))
            if i in self.pick:
                self.samples.append({"key": doc["key"], "customer": doc["customer"], "subject": doc["subject"],
                                     "message_id": doc["message_ids"][-1], "archived": archived_at.isoformat()})
        self.write_month(folder, month_now, batch)


def _append(path: Path, text: str) -> None:
    """Append and fsync, as the archive does (the bytes are checked against Archive.add's by check_format)."""
    from mailhelpdesk.store import archive

    archive._append(path, text)


def _fsync(folder: Path) -> None:
    from mailhelpdesk.store.archive import fsync_dir

    fsync_dir(folder)


# ------------------------------------------------------------------------------------------------ working set


def working_set(state: Any, config: Any, first: int, count: int, now: datetime, seed: int = 11) -> list[dict]:
    """`count` tickets not yet closed (half open, a quarter pending, a quarter resolved), created in the last 5 days,
    with their acknowledgement / assignment (and resolution) records, labels as the daemon would have set them and
    records written, and the per-sender log of the last day's acknowledgements: a steady state in which no timed
    duty has anything to do. Returns open tickets to reply to."""
    from mailhelpdesk.store import records
    from mailhelpdesk.core.engine import Engine
    from mailhelpdesk.core.labels import scheme_for
    from mailhelpdesk.core.mail.factory import ID_SECRET
    from mailhelpdesk.model import HistoryEntry, Priority, SentRecord, Status, Ticket
    from mailhelpdesk.core.judge.senders import sender_key

    rng = random.Random(seed)
    scheme = scheme_for(config)
    mail = Engine(config).ctx.mail.keyed(state.cursors.get(ID_SECRET, ""))
    open_samples = []
    for n in range(count):
        number = first + n
        key = f"HD-{number}"
        created = (now - timedelta(seconds=rng.randint(600, 5 * 86400))).replace(microsecond=0)
        customer = f"wcustomer{number}@{rng.choice(DOMAINS)}"
        agent = c.AGENTS[number % len(c.AGENTS)]
        priority = rng.choice([Priority.NORMAL] * 6 + [Priority.HIGH, Priority.LOW, Priority.URGENT])
        k = rng.randint(2, 5)
        message_ids = tuple(f"<CA{rng.getrandbits(128):032x}@mail.gmail.com>" for _ in range(k))
        refs = tuple(f"INBOX:1700000000:{number * 5 + i}" for i in range(k))
        history = [HistoryEntry(created, "created", f"priority {priority.value} (default)"),
                   HistoryEntry(created, "assigned", f"{agent['name']} (round_robin)"),
                   HistoryEntry(created + timedelta(seconds=3), "acknowledged", customer)]
        at = created
        for i in range(1, k):
            at = min(now - timedelta(minutes=1), at + timedelta(minutes=rng.randint(5, 600)))
            history.append(HistoryEntry(at, "agent replied" if i % 2 else "customer replied",
                                        agent["name"] if i % 2 else customer))
        kind = rng.random()
        fields: dict[str, Any] = {"first_response_at": created + timedelta(minutes=rng.randint(5, 120))}
        if kind < 0.25:  # open, waiting for us, overdue: the ladder already taken
            status = Status.OPEN
            fields.update(waiting_since=at, due_at=at + timedelta(hours=2), escalations=("warn", "breach"))
            if at + timedelta(hours=2) > now:
                fields.update(due_at=now - timedelta(minutes=1))
        elif kind < 0.4:  # open, waiting for us, due later than this benchmark lasts (the warning already sent)
            status = Status.OPEN
            fields.update(waiting_since=at, due_at=now + timedelta(hours=rng.randint(4, 48)), escalations=("warn",))
        elif kind < 0.5:  # open, answered
            status = Status.OPEN
        elif kind < 0.75:
            status = Status.PENDING
        else:  # resolved in the last two days (not yet closed by auto-close after 3 days)
            status = Status.RESOLVED
            resolved = now - timedelta(hours=rng.randint(1, 48))
            fields.update(resolved_at=resolved)
            history.append(HistoryEntry(resolved, "status", "open -> resolved (label)"))
        ticket = Ticket(
            key=key, number=number, customer=customer, subject=f"Order {rng.randint(10**5, 10**6)}: where is my parcel?",
            created_at=created, customer_name=f"Customer {number}", status=status, priority=priority,
            assignee=agent["name"], updated_at=at, message_ids=message_ids, refs=refs,
            participants=(customer, agent["email"]), thread_ids=(f"{rng.getrandbits(60):x}",), history=tuple(history),
            **fields,
        )
        ticket = dataclasses.replace(ticket, labels_applied=tuple(sorted(scheme.for_ticket(ticket, now))),
                                     recorded=records.fingerprint(ticket))
        state.tickets[key] = ticket
        sends = [(f"ack:{key}", "acknowledgement", customer), (f"assigned:{key}", "assignment", agent["email"])]
        if status == Status.RESOLVED:
            sends.append((mail.resolution_key(ticket), "resolution", customer))
        for send_key, send_kind, to in sends:
            mid = mail.message_id(send_key)
            state.sent[mid] = SentRecord(send_key, mid, to, send_kind, key, created + timedelta(seconds=3), done=True)
        if now - created < DAY:  # acknowledged in the last 24 hours: the per-sender limit's log ([autoreply])
            state.sender_log.setdefault(sender_key(customer), []).append(created + timedelta(seconds=3))
        if status == Status.OPEN and len(open_samples) < 200:
            open_samples.append({"key": key, "customer": customer, "subject": ticket.subject,
                                 "message_id": message_ids[-1]})
    for times in state.sender_log.values():
        times.sort()
    state.next_number = first + count
    state.rebuild_index()
    return open_samples


# ------------------------------------------------------------------------------------------------ processes


def cli_path() -> list[str]:
    script = Path(sys.executable).with_name("mailhelpdesk")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from mailhelpdesk.app.cli import main; sys.exit(main())"]


TIME = "/usr/bin/time"


def run_measured(cmd: list[str], out: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run a process: its wall time, exit code and its own peak RSS. Through GNU time when present: wait4's
    ru_maxrss of a child of this process would start at this process's RSS (the forked image's high-water mark
    survives exec on Linux), and this process holds the generated history; time's own child is forked from time."""
    rss_file = Path(str(out or "/tmp/year-bench") + ".rss")
    timed = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M", "-o", str(rss_file), *cmd] if timed else cmd
    started = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        proc = subprocess.Popen(full, stdout=sink, stderr=subprocess.STDOUT, cwd=c.REPO)
        _, status, usage = _wait4(proc, timeout)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = usage.ru_maxrss
    if timed:
        try:
            rss_kb = int(rss_file.read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            rss_kb = -1024
        rss_file.unlink(missing_ok=True)
    return {"seconds": seconds, "rc": proc.returncode, "rss_mb": rss_kb / 1024}


def _wait4(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.monotonic() > deadline:
            proc.kill()
            return os.wait4(proc.pid, 0)
        time.sleep(0.002)


LOAD_CODE = """
import gc, json, statistics, sys, time
from mailhelpdesk.store.state import Store
samples = []
for _ in range(int(sys.argv[2])):
    gc.collect()
    started = time.perf_counter()
    state = Store(sys.argv[1]).load()
    samples.append(time.perf_counter() - started)
    tickets = len(state.tickets)
    del state
print(json.dumps({"seconds": statistics.median(samples), "all": samples, "tickets": tickets}))
"""

STREAMED_REPORT_CODE = """
import json, sys, time
from datetime import UTC, datetime, timedelta
from mailhelpdesk.core import report as figures
from mailhelpdesk.config import calendar, load_config
from mailhelpdesk.store.state import Store
config = load_config(sys.argv[1], secrets=False)
started = time.perf_counter()
store = Store(config.resolve(config.helpdesk.state_file))
state = store.load()
now = datetime.now(UTC)
result = figures.compute_report(store.tickets(state), config.helpdesk.tz, now - timedelta(days=366), None, now,
                                calendar=calendar(config))
text = figures.format_table(result)
print(json.dumps({"seconds": time.perf_counter() - started, "opened": result.total.opened,
                  "closed": result.total.closed}))
"""

PROFILE_CODE = """
import cProfile, io, pstats, sys
from mailhelpdesk.app.cli import main
args = sys.argv[2:]
profile = cProfile.Profile()
profile.enable()
try:
    main(args, standalone_mode=False)
except SystemExit:
    pass
profile.disable()
out = io.StringIO()
pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(18)
open(sys.argv[1], "w").write(out.getvalue())
"""


# ------------------------------------------------------------------------------------------------ the daemon


def worker(spec_path: str) -> None:
    """The daemon's side, in its own process (its peak RSS is the daemon's): new mails, replies, label changes
    and replies to archived tickets, each followed by one timed `Helpdesk.run_pass()`."""
    from imapclient import IMAPClient

    from mailhelpdesk.config import load_config
    from mailhelpdesk.app.daemon import Helpdesk
    from mailhelpdesk.backends.imap_labels import keyword

    spec = json.loads(Path(spec_path).read_text())
    c.quiet_logs()
    config = load_config(Path(spec["config"]))
    started = time.perf_counter()
    helpdesk = Helpdesk(config)
    start_seconds = time.perf_counter() - started
    store = helpdesk.store
    meter = {"save_s": 0.0, "saves": 0, "journal_bytes": 0, "compactions": 0, "compact_bytes": 0}
    save, compact, append = store.save, store.compact, store.journal.append

    def timed_save(state):
        began = time.perf_counter()
        try:
            save(state)
        finally:
            meter["save_s"] += time.perf_counter() - began
            meter["saves"] += 1

    def counted_compact(state):
        compact(state)
        meter["compactions"] += 1
        meter["compact_bytes"] += store.file_size

    def counted_append(record):
        size = append(record)
        meter["journal_bytes"] += size
        return size

    store.save, store.compact, store.journal.append = timed_save, counted_compact, counted_append
    client = IMAPClient(spec["host"], port=spec["port"], ssl=False, timeout=60)
    client.login(spec["username"], spec["password"])
    profile = None
    if spec.get("profile"):
        import cProfile

        profile = cProfile.Profile()

    def deliver(raw: bytes) -> int:
        response = client.append("INBOX", raw, msg_time=datetime.now(UTC))
        found = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
        return int(found.group(1)) if found else 0

    def one_pass(label: str, profiled: bool = False) -> dict[str, Any]:
        for k in meter:
            meter[k] = 0.0 if k == "save_s" else 0
        began, cpu = time.perf_counter(), time.process_time()
        if profiled and profile is not None:
            profile.enable()
        error = ""
        try:
            report = helpdesk.run_pass()
        except Exception as exc:  # reported, not raised: a benchmark prints what failed
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            report = None
            helpdesk.reset()
        finally:
            if profiled and profile is not None:
                profile.disable()
        return {"what": label, "seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu, **meter,
                "error": error,
                "messages": report.messages if report else 0, "label_changes": report.label_changes if report else 0,
                "sends": sum(report.sends.values()) if report else 0, "done": len(report.done) if report else 0}

    passes: list[dict[str, Any]] = []
    passes.append(one_pass("warm-up 1"))
    passes.append(one_pass("warm-up 2"))
    stamp = f"{int(time.time())}.{os.getpid()}"
    new_refs: list[tuple[int, str]] = []
    for i in range(spec["mails"]):
        now = datetime.now(UTC)
        mid = f"<year.{stamp}.{i}@newcustomer.example>"
        # a free-mail address each: [autoreply] max_per_domain (5 a day) would hold back a shared company domain's
        raw = message(f"newcustomer{i}.{stamp}@gmail.com", f"Order {200000 + i} has not arrived", mid, now)
        uid = deliver(raw)
        passes.append(one_pass("new mail", profiled=i == spec["mails"] - 1))
        passes.append(one_pass("new mail, the pass after"))
        ticket = helpdesk.state.ticket_of(mid)
        passes[-2]["ok"] = ticket is not None and any(
            r.ticket == ticket.key and r.kind == "acknowledgement" and r.done for r in helpdesk.state.sent.values())
        if ticket is not None and uid:
            new_refs.append((uid, ticket.key))
    for i, sample in enumerate(spec["open"][: spec["replies"]]):
        mid = f"<year.reply.{stamp}.{i}@{sample['customer'].split('@')[1]}>"
        raw = message(sample["customer"], "Re: " + sample["subject"], mid, datetime.now(UTC), reply_to=sample["message_id"])
        deliver(raw)
        passes.append(one_pass("reply"))
        passes.append(one_pass("reply, the pass after"))
        ticket = helpdesk.state.tickets.get(sample["key"])
        passes[-2]["ok"] = ticket is not None and mid in ticket.message_ids
    client.select_folder("INBOX")
    pending, opened = keyword("Helpdesk/Status/Pending"), keyword("Helpdesk/Status/Open")
    for uid, key in new_refs[: spec["labels"]]:
        client.remove_flags([uid], [opened])
        client.add_flags([uid], [pending])
        passes.append(one_pass("label change"))
        ticket = helpdesk.state.tickets.get(key)
        passes[-1]["ok"] = ticket is not None and ticket.status.value == "pending"
    archived = []
    for i, sample in enumerate(spec["archived"]):
        mid = f"<year.late.{stamp}.{i}@{sample['customer'].split('@')[1]}>"
        raw = message(sample["customer"], "Re: " + sample["subject"], mid, datetime.now(UTC), reply_to=sample["message_id"])
        deliver(raw)
        passes.append(one_pass("reply to an archived ticket"))
        ticket = helpdesk.state.ticket_of(mid)
        ok = ticket is not None and ticket.key != sample["key"] and sample["key"] in ticket.related
        passes[-1]["ok"] = ok
        archived.append({"archived": sample["key"], "archived_at": sample["archived"],
                         "new": ticket.key if ticket else None, "related": list(ticket.related) if ticket else [],
                         "ok": ok, "seconds": passes[-1]["seconds"]})
        passes.append(one_pass("reply to an archived ticket, the pass after"))
    passes.append(one_pass("idle"))
    client.logout()
    helpdesk.close()
    profile_text = ""
    if profile is not None:
        import io
        import pstats

        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(22)
        profile_text = out.getvalue()
    import resource

    Path(spec["out"]).write_text(json.dumps({
        "passes": passes, "archived": archived, "start_s": start_seconds, "profile": profile_text,
        "tickets": len(helpdesk.state.tickets),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vmhwm_mb": c.peak_rss_mb()}))


def message(sender: str, subject: str, mid: str, when: datetime, reply_to: str = "") -> bytes:
    lines = [f"From: Customer <{sender}>", f"To: Support <{c.SUPPORT}>", f"Subject: {subject}",
             f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}", f"Message-ID: {mid}"]
    if reply_to:
        lines += [f"In-Reply-To: {reply_to}", f"References: {reply_to}"]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit", "",
              "Hello,", "", "my order was due last week and is still not here. Could you check where it is?", "",
              "Thanks", ""]
    return "\r\n".join(lines).encode()


# ------------------------------------------------------------------------------------------------ one size


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def prepare(history: int, args: argparse.Namespace, server: Any, sink: Any, tmp: Path) -> dict[str, Any]:
    """One size: an account, its config, the state (cursors from a pass over the empty mailbox, the history in the
    archive, the working set compacted into the file)."""
    from servers import ImapAccount

    from mailhelpdesk.config import load_config
    from mailhelpdesk.app.daemon import Helpdesk
    from mailhelpdesk.store.state import Store

    home = tmp / f"history-{history}"
    account = ImapAccount.create(server, prefix=f"y{history}")
    toml = home / "mailhelpdesk.toml"
    write_toml(toml, config_data(account, sink, home))
    config = load_config(toml)
    state_path = home / "state.json"

    # the cursors, the Message-ID secret and last_pass as the daemon writes them: one pass over the empty mailbox
    helpdesk = Helpdesk(config)
    helpdesk.run_pass()
    helpdesk.close()
    del helpdesk

    now = datetime.now(UTC)
    store = Store(state_path)
    state = store.load()
    began = time.perf_counter()
    writer = HistoryWriter(store.archive, now, history, samples=3 * args.rounds)
    writer.check_format(home)
    writer.write(store.archive.folder)
    history_s = time.perf_counter() - began
    began = time.perf_counter()
    open_samples = working_set(state, config, history + 1, args.open, now)
    store.compact(state)
    working_s = time.perf_counter() - began
    in_state = len(state.tickets)
    lookup = lookup_cost(store.archive)
    del state, store
    gc.collect()
    archive_folder = state_path.with_name(state_path.name + ".archive")
    sizes = {"state": state_path.stat().st_size, "archive": folder_size(archive_folder),
             "index": folder_size(archive_folder / "index")}
    print(f"  {history:,} tickets of history generated in {history_s:.0f} s ({writer.message_ids:,} Message-IDs of "
          f"tickets and sends, {writer.index_lines:,} index lines); working set of {in_state:,} in {working_s:.1f} s; "
          f"state {mb(sizes['state'])}, archive {mb(sizes['archive'])} (index {mb(sizes['index'])})", flush=True)
    year_ago = (now - 365 * DAY).astimezone(config.helpdesk.tz).strftime("%Y-%m-%d")
    return {"history": history, "home": home, "toml": toml, "account": account, "state_path": state_path,
            "samples": writer.samples, "open": open_samples, "in_state": in_state, "sizes": sizes,
            "generate_s": history_s, "message_ids": writer.message_ids, "index_lines": writer.index_lines,
            "year_ago": year_ago, "passes": [], "archived": [], "daemon_rss": [], "daemon_hwm": [], "mails_sent": 0,
            "load": [], "commands": {}, "profiles": {}, "lookup": lookup}


def lookup_cost(archive: Any, count: int = 200) -> float:
    """Median seconds of one `Archive.lookup` of a Message-ID the archive never saw (what every new mail asks:
    core/rules/known.py), the part of a pass that reads a file which grows with the history (one index bucket)."""
    samples = []
    for i in range(count):
        name = f"<never.{i}.{random.getrandbits(64):x}@gmail.com>"
        began = time.perf_counter()
        archive.lookup(name)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def daemon_round(ctx: dict[str, Any], round_: int, args: argparse.Namespace, sink: Any) -> None:
    """One daemon process on this size: its share of the mails, replies, label changes and late replies."""
    share = lambda n: share_(n, args.rounds, round_)  # noqa: E731
    replies = share(args.replies)
    skip = sum(share_(args.replies, args.rounds, r) for r in range(round_))
    home, account = ctx["home"], ctx["account"]
    out = home / f"worker-{round_}.json"
    spec = {"config": str(ctx["toml"]), "host": account.host, "port": account.port, "username": account.username,
            "password": account.password, "mails": share(args.mails), "replies": replies, "labels": share(args.labels),
            "open": ctx["open"][skip : skip + replies], "archived": ctx["samples"][3 * round_ : 3 * round_ + 3],
            "profile": args.profile and round_ == args.rounds - 1, "out": str(out)}
    (home / "worker-spec.json").write_text(json.dumps(spec))
    sent_before = len(sink.messages)
    log = home / f"worker-{round_}.log"
    daemon = run_measured([sys.executable, str(Path(__file__).resolve()), "--worker", str(home / "worker-spec.json")], log)
    if daemon["rc"] != 0 or not out.exists():
        raise SystemExit(f"the daemon process failed (exit {daemon['rc']}):\n{log.read_text()[-3000:]}")
    result = json.loads(out.read_text())
    ctx["mails_sent"] += len(sink.messages) - sent_before
    ctx["passes"] += result["passes"]
    ctx["archived"] += result["archived"]
    ctx["daemon_rss"].append(daemon["rss_mb"])
    ctx["daemon_hwm"].append(result["vmhwm_mb"])
    if result["profile"]:
        ctx["profiles"]["new mail pass (daemon, in-process)"] = result["profile"]


def share_(n: int, rounds: int, round_: int) -> int:
    return n // rounds + (1 if round_ < n % rounds else 0)


def commands_of(ctx: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "run --once": ["run", "--once"],
        "tickets": ["tickets"],
        "status": ["status"],
        "report": ["report", "--since", ctx["year_ago"]],
        "tickets --json": ["tickets", "--json"],
        "tickets <archived key>": ["tickets", ctx["samples"][0]["key"]],
    }


MAIN_COMMANDS = ("run --once", "tickets", "status", "report")


def command_round(ctx: dict[str, Any], first: bool) -> None:
    """Each command once on this size (the others only in the first round), and one Store.load."""
    cli = cli_path()
    load = subprocess.run([sys.executable, "-c", LOAD_CODE, str(ctx["state_path"]), "1"], capture_output=True,
                          text=True, check=True, cwd=c.REPO)
    ctx["load"].append(json.loads(load.stdout)["seconds"])
    for name, argv in commands_of(ctx).items():
        if name not in MAIN_COMMANDS and not first:
            continue
        out = ctx["home"] / f"cmd-{re.sub(r'[^a-z-]+', '_', name)}.txt"
        run = run_measured([*cli, *argv, "--config", str(ctx["toml"])], out)
        text = out.read_text(errors="replace")
        run.update(output=text[-2000:], head=text[:2000])
        ctx["commands"].setdefault(name, []).append(run)


def finish(ctx: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The reference report over Store.tickets(), profiles, sizes after the run; the files go (unless --keep)."""
    home, toml = ctx["home"], ctx["toml"]
    streamed = run_measured([sys.executable, "-c", STREAMED_REPORT_CODE, str(toml)], home / "streamed-report.txt")
    try:
        streamed.update(json.loads((home / "streamed-report.txt").read_text().strip().splitlines()[-1]))
    except (ValueError, IndexError):
        streamed["error"] = (home / "streamed-report.txt").read_text()[-500:]
    commands = {}
    for name, runs in ctx["commands"].items():
        commands[name] = {"seconds": statistics.median(r["seconds"] for r in runs),
                          "rss_mb": max(r["rss_mb"] for r in runs), "rc": max(r["rc"] for r in runs),
                          "all": [round(r["seconds"], 3) for r in runs], "output": runs[-1]["output"],
                          "head": runs[-1]["head"]}
    found = re.search(r"opened (\d+), closed (\d+)", commands["report"]["head"])
    commands["report"]["opened"] = int(found.group(1)) if found else None
    commands["report"]["closed"] = int(found.group(2)) if found else None
    if args.profile:
        for name in MAIN_COMMANDS:
            out = home / f"profile-{name.replace(' ', '_')}.txt"
            subprocess.run([sys.executable, "-c", PROFILE_CODE, str(out), *commands_of(ctx)[name], "--config", str(toml)],
                           cwd=c.REPO, capture_output=True)
            ctx["profiles"][name] = out.read_text() if out.exists() else "(no profile)"
    journal = ctx["state_path"].with_name(ctx["state_path"].name + ".journal")
    final_sizes = {"state": ctx["state_path"].stat().st_size, "journal": journal.stat().st_size if journal.exists() else 0}
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return {"history": ctx["history"], "in_state": ctx["in_state"], "sizes": ctx["sizes"], "final_sizes": final_sizes,
            "load": {"seconds": statistics.median(ctx["load"]), "all": ctx["load"]},
            "daemon": {"rss_mb": max(ctx["daemon_rss"]), "vmhwm_mb": max(ctx["daemon_hwm"])},
            "worker": {"passes": ctx["passes"], "archived": ctx["archived"]}, "commands": commands,
            "streamed_report": streamed, "mails_sent": ctx["mails_sent"], "generate_s": ctx["generate_s"],
            "message_ids": ctx["message_ids"], "profiles": ctx["profiles"], "lookup": ctx["lookup"]}


# ------------------------------------------------------------------------------------------------ printing


def of(passes: list[dict], what: str) -> list[dict]:
    return [p for p in passes if p["what"] == what]


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 10e9 else f"{n / 1e9:,.1f} GB"


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    passes = r["worker"]["passes"]
    new = of(passes, "new mail")
    after = of(passes, "new mail, the pass after")
    replies, labels = of(passes, "reply"), of(passes, "label change")
    late = of(passes, "reply to an archived ticket")
    secs = lambda ps: [p["seconds"] for p in ps]  # noqa: E731
    return {
        "new_p50": pct(secs(new), 0.5), "new_p95": pct(secs(new), 0.95),
        "new_cpu_p50": pct([p["cpu"] for p in new], 0.5), "new_cpu_p95": pct([p["cpu"] for p in new], 0.95),
        "new_both_p50": pct([a["seconds"] + b["seconds"] for a, b in zip(new, after)], 0.5),
        "after_p50": pct(secs(after), 0.5),
        "save_p50": pct([p["save_s"] for p in new], 0.5),
        "bytes_new": statistics.median(p["journal_bytes"] for p in new) if new else 0,
        "bytes_after": statistics.median(p["journal_bytes"] for p in after) if after else 0,
        "bytes_reply": statistics.median(p["journal_bytes"] for p in replies) if replies else 0,
        "bytes_label": statistics.median(p["journal_bytes"] for p in labels) if labels else 0,
        "compactions": sum(p["compactions"] for p in passes),
        "reply_p50": pct(secs(replies), 0.5), "reply_p95": pct(secs(replies), 0.95),
        "label_p50": pct(secs(labels), 0.5), "label_p95": pct(secs(labels), 0.95),
        "late_p50": pct(secs(late), 0.5),
        "late_ok": sum(1 for a in r["worker"]["archived"] if a["ok"]), "late_n": len(r["worker"]["archived"]),
        "ok": all(p.get("ok", True) for p in passes), "errors": [p for p in passes if p["error"]],
        "acks": sum(1 for p in new if p.get("ok")), "n_new": len(new),
        "daemon_rss": r["daemon"]["rss_mb"], "daemon_hwm": r["daemon"]["vmhwm_mb"],
        "idle_p50": pct(secs(of(passes, "idle")), 0.5),
    }


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    sums = [summarise(r) for r in results]
    rows = []
    for r, s in zip(results, sums):
        cmd = r["commands"]
        cell = lambda name: f"{cmd[name]['seconds']:.2f} s, {cmd[name]['rss_mb']:.0f} MB" + (  # noqa: E731
            "" if cmd[name]["rc"] in (0,) else f" (exit {cmd[name]['rc']})")
        rows.append([
            f"{r['in_state']:,} / {r['history']:,}",
            f"{mb(r['sizes']['state'])} (archive {mb(r['sizes']['archive'])})",
            f"{r['load']['seconds']:.2f} s",
            f"{s['save_p50'] * 1000:.0f} ms, {s['bytes_new'] / 1000:.1f} kB",
            f"p50 {s['new_p50']:.3f} s, p95 {s['new_p95']:.3f} s (+{s['after_p50']:.3f} s the pass after)",
            f"reply {s['reply_p50']:.3f} s / label {s['label_p50']:.3f} s",
            cell("run --once"), cell("tickets"), cell("status"), cell("report"),
            f"{s['daemon_rss']:.0f} MB",
        ])
    print()
    load = os.getloadavg()[0]
    print(f"A year of a busy helpdesk: {args.open:,} tickets not yet closed, history in the archive; private Dovecot "
          f"+ SMTP sink on 127.0.0.1; {os.cpu_count()} CPU(s), load average {load:.1f}; per-mail figures over "
          f"{args.mails} mails, commands median of {args.repeat}; `python bench/year.py {' '.join(sys.argv[1:])}`.")
    print()
    print(c.table(rows, ["tickets in the state / history", "state file", "load", "save (per new mail: time, journal)",
                         "new mail, daemon", "reply or label change", "`run --once`, nothing new", "`tickets`",
                         "`status`", "`report` (a year)", "peak RSS (daemon)"]))

    print()
    detail = []
    for r, s in zip(results, sums):
        cmd, st = r["commands"], r["streamed_report"]
        detail.append([
            f"{r['history']:,}",
            f"{s['bytes_new']:,.0f} / {s['bytes_after']:,.0f} / {s['bytes_reply']:,.0f} / {s['bytes_label']:,.0f} B"
            + (f"; {s['compactions']} compaction(s)" if s["compactions"] else ""),
            f"p50 {s['new_both_p50']:.3f} s",
            f"{s['reply_p95']:.3f} s / {s['label_p95']:.3f} s",
            f"{s['late_ok']}/{s['late_n']} linked, p50 {s['late_p50']:.3f} s",
            f"{s['acks']}/{s['n_new']} acked; {r['mails_sent']} mails to the sink",
            f"{cmd['tickets --json']['seconds']:.2f} s, {cmd['tickets --json']['rss_mb']:.0f} MB",
            f"exit {cmd['tickets <archived key>']['rc']}, {cmd['tickets <archived key>']['seconds']:.2f} s: "
            + (cmd["tickets <archived key>"]["output"].strip().splitlines() or ["-"])[0][:60],
            f"opened {cmd['report']['opened']}, closed {cmd['report']['closed']}",
            (f"{st['seconds']:.1f} s ({st['rss_mb']:.0f} MB), opened {st.get('opened')}, closed {st.get('closed')}"
             if "error" not in st else f"FAILED: {st['error'][:80]}"),
            f"{r['final_sizes']['journal'] / 1000:,.0f} kB",
            f"{s['idle_p50']:.3f} s",
            f"{s['daemon_rss']:.0f} MB (VmHWM {s['daemon_hwm']:.0f} MB)",
            f"p50 {s['new_cpu_p50']:.3f} s, p95 {s['new_cpu_p95']:.3f} s",
            f"{r['lookup'] * 1000:.2f} ms",
        ])
    print(c.table(detail, ["history", "journal bytes per pass: new mail / pass after / reply / label",
                           "new mail, both passes", "p95 reply / label", "reply to an archived ticket",
                           "acknowledgements", "`tickets --json`", "`tickets <archived key>`",
                           "`report` counts (product)", "report over Store.tickets() (streamed, reference)",
                           "journal after the run", "idle pass (daemon)", "daemon peak RSS (time / in-process)",
                           "new mail, CPU time of the pass", "archive index lookup (one bucket)"]))

    failures = [f"{r['history']:,}: {p['what']}: {p['error']}" for r, s in zip(results, sums) for p in s["errors"]]
    failures += [f"{r['history']:,}: {name} exit {v['rc']}: {v['output'].strip().splitlines()[-1:] or ''}"
                 for r in results for name, v in r["commands"].items() if v["rc"] not in (0,)]
    if failures:
        print("\nFailures:")
        for line in failures:
            print("  " + line)

    verdict: dict[str, Any] = {}
    print(f"\nLoad average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min; "
          f"{os.cpu_count()} CPUs): other work on the machine shows in the wall times, less in the CPU times.")
    if len(results) > 1:
        for key, label in (("new_p50", "p50"), ("new_p95", "p95"), ("new_cpu_p50", "cpu_p50")):
            values = [s[key] for s in sums]
            verdict[f"flat_{label}"] = max(values) / min(values)
        flat = verdict["flat_p95"] <= FLAT and verdict["flat_p50"] <= FLAT
        across = ", ".join(f"{r['history']:,}" for r in results)
        print(f"Per-mail cost across {across} tickets of history (largest / smallest): wall p50 "
              f"x{verdict['flat_p50']:.2f}, p95 x{verdict['flat_p95']:.2f}, CPU p50 x{verdict['flat_cpu_p50']:.2f}: "
              f"{'FLAT' if flat else 'NOT flat'} within {FLAT}x (wall time; CPU time "
              f"{'flat' if verdict['flat_cpu_p50'] <= FLAT else 'NOT flat'}).")
    last, s = results[-1], sums[-1]
    cmd = last["commands"]
    report_s, report_mb = cmd["report"]["seconds"], cmd["report"]["rss_mb"]
    report_covers = (cmd["report"]["opened"] or 0) >= last["history"] * 0.9
    targets = [
        (f"new mail p95 < {TARGET_MAIL_P95} s", s["new_p95"] < TARGET_MAIL_P95, f"{s['new_p95']:.3f} s"),
        (f"run --once nothing new < {TARGET_COMMAND} s", cmd["run --once"]["seconds"] < TARGET_COMMAND,
         f"{cmd['run --once']['seconds']:.2f} s"),
        (f"tickets < {TARGET_COMMAND} s", cmd["tickets"]["seconds"] < TARGET_COMMAND, f"{cmd['tickets']['seconds']:.2f} s"),
        (f"status < {TARGET_COMMAND} s", cmd["status"]["seconds"] < TARGET_COMMAND, f"{cmd['status']['seconds']:.2f} s"),
        (f"daemon peak RSS < {TARGET_DAEMON_RSS} MB", s["daemon_rss"] < TARGET_DAEMON_RSS, f"{s['daemon_rss']:.0f} MB"),
        (f"report over the year < {TARGET_REPORT_S} s and < {TARGET_REPORT_MB} MB",
         report_s < TARGET_REPORT_S and report_mb < TARGET_REPORT_MB and report_covers,
         f"{report_s:.2f} s, {report_mb:.0f} MB" + ("" if report_covers else
                                                   f" but it counts {cmd['report']['opened']} opened tickets of "
                                                   f"{last['history'] + last['in_state']:,}: the archive is not read")),
        ("a reply to an archived ticket opens a linked ticket", s["late_ok"] == s["late_n"] and s["late_n"] > 0,
         f"{s['late_ok']}/{s['late_n']}"),
        (f"bytes per change proportional to the change (a pass that only moves the cursors < {CURSOR_PASS_BYTES:,} B)",
         s["bytes_after"] < CURSOR_PASS_BYTES,
         f"the pass after a new mail wrote {s['bytes_after']:,.0f} B, a new mail {s['bytes_new']:,.0f} B, a label change "
         f"{s['bytes_label']:,.0f} B"),
    ]
    every = " / ".join(f"{x['new_p95']:.3f}" for x in sums)
    print(f"Targets at {last['history']:,} tickets of history (new mail p95 at every size: {every} s):")
    for name, ok, value in targets:
        print(f"  {'met    ' if ok else 'MISSED '} {name}: {value}")
    verdict["targets"] = {name: ok for name, ok, _ in targets}
    return {"sums": sums, **verdict}


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="10000,100000",
                        help="tickets of history, comma-separated (with 365000 the run takes ~7-12 min and 1.4 GB of disk)")
    parser.add_argument("--open", type=int, default=5000, help="tickets not yet closed in the working set")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command and of the load (median)")
    parser.add_argument("--mails", type=int, default=20, help="new customer mails, one pass each")
    parser.add_argument("--replies", type=int, default=10, help="customer replies into open tickets")
    parser.add_argument("--labels", type=int, default=10, help="agent label changes")
    parser.add_argument("--rounds", type=int, default=2,
                        help="daemon processes per size, interleaved across sizes (mails, replies, labels split)")
    parser.add_argument("--profile", action="store_true", help="cProfile the commands and one new-mail pass")
    parser.add_argument("--keep", action="store_true", help="keep the generated files (printed path)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    sizes = [int(s) for s in args.history.split(",") if s]
    c.quiet_logs()
    results = []
    with c.workdir("year") as tmp:
        if args.keep:
            tmp = Path(str(tmp) + "-kept")
            tmp.mkdir()
            print(f"files kept in {tmp}")
        with c.mail_servers("year", tmp) as (server, sink):
            if server is None:
                return
            contexts = [prepare(history, args, server, sink, tmp) for history in sizes]
            # interleaved, so that the sizes share whatever else the machine does while they are measured
            for round_ in range(args.rounds):
                for ctx in contexts:
                    began = time.perf_counter()
                    daemon_round(ctx, round_, args, sink)
                    print(f"  {ctx['history']:,}: daemon round {round_ + 1} of {args.rounds} in "
                          f"{time.perf_counter() - began:.0f} s", flush=True)
            for round_ in range(args.repeat):
                for ctx in contexts:
                    began = time.perf_counter()
                    command_round(ctx, round_ == 0)
                    print(f"  {ctx['history']:,}: commands, round {round_ + 1} of {args.repeat} in "
                          f"{time.perf_counter() - began:.0f} s", flush=True)
            results = [finish(ctx, args) for ctx in contexts]
    verdict = print_results(results, args)
    if args.profile:
        for r in results[-1:]:
            for name, text in r["profiles"].items():
                print(f"\n--- cProfile, {name}, {r['history']:,} tickets of history (top by cumulative time)")
                print("\n".join(text.strip().splitlines()[:40]))
    c.emit("year", {"open": args.open, "sizes": sizes, **{k: v for k, v in verdict.items() if k != "sums"},
                    "figures": [{"history": r["history"], "load_s": r["load"]["seconds"],
                                 "state_mb": r["sizes"]["state"] / 1e6, "archive_mb": r["sizes"]["archive"] / 1e6,
                                 **{k: v for k, v in s.items() if k != "errors"},
                                 **{f"{k}_s": v["seconds"] for k, v in r["commands"].items()},
                                 **{f"{k}_mb": v["rss_mb"] for k, v in r["commands"].items()}}
                                for r, s in zip(results, verdict["sums"])]})


if __name__ == "__main__":
    main()
