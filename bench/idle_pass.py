"""The cost of an idle pass (no new mail, no label changes) at 1,000 and at 20,000 messages in the mailbox.

Each mailbox holds `--recent` (1,000) messages of the last 10 days (the backlog the first pass turns into
tickets) and, for the larger size, older mail beyond [imap] import_days / the initial Gmail query (an archive the
helpdesk never imports). So both sizes have the same tickets and only the mailbox grows: the idle cost must not.

Per backend and size: pass 1 (the import), pass 2 (the pass after a pass that labelled: it reads back its own
label changes), then the median of `--idle` idle passes, then a pass after an agent marked all mail read
(no label changes, but every message's MODSEQ moves) and the pass after that:
  IMAP  (private Dovecot, CONDSTORE): commands, bytes each way, wall time, time saving the state file;
        also the same mailbox with CONDSTORE hidden (the documented fallback: a full flag scan each pass);
  Gmail (the API fake): API calls, quota units, HTTP requests, wall time.
Run: python bench/idle_pass.py [--sizes 1000,20000] [--recent 1000] [--idle 3]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import _common as c


def mailbox_mail(size: int, recent: int, now) -> list[tuple[bytes, object]]:
    """(raw, when) pairs: `recent` messages of the last 10 days, the rest 30-400 days old, oldest first."""
    mail = []
    for i in range(size):
        if i < size - recent:
            when = now - timedelta(days=30 + (i * 7919) % 370, minutes=i % 1440)
        else:
            when = now - timedelta(minutes=5 + (i * 104729) % (10 * 24 * 60))
        mail.append((c.small_message(i, when), when))
    mail.sort(key=lambda m: m[1])
    return mail


class SaveTimer:
    def __init__(self, helpdesk):
        self.seconds = 0.0
        save = helpdesk.store.save

        def timed(state):
            started = time.perf_counter()
            try:
                save(state)
            finally:
                self.seconds += time.perf_counter() - started

        helpdesk.store.save = timed


def imap_rows(server, sink, size: int, recent: int, idle: int, tmp) -> list[dict]:
    from servers import ImapAccount

    from mailhelpdesk.app.daemon import Helpdesk

    now = c.bench_now()
    account = ImapAccount.create(server, prefix=f"idle{size}")
    mail = mailbox_mail(size, recent, now)
    load = c.load_imap(account, [("INBOX", raw, when) for raw, when in mail])
    config = c.imap_config(account, sink, tmp / f"imap-{size}", sending=False)
    rows = []

    def run(helpdesk, counter, saves, label: str, passes: int = 1) -> dict:
        samples = []
        for _ in range(passes):
            counter.reset()
            saves.seconds = 0.0
            started = time.perf_counter()
            error = ""
            try:
                report = helpdesk.run_pass()
            except Exception as exc:  # a benchmark reports a failing pass, it does not stop
                error = f"{type(exc).__name__}: {str(exc)[:160]}"
                report = None
            samples.append({"seconds": time.perf_counter() - started, "commands": len(counter.commands),
                            "summary": counter.summary(), "sent": counter.sent, "received": counter.received,
                            "save": saves.seconds, "messages": report.messages if report else "-",
                            "label_changes": report.label_changes if report else "-", "error": error})
        middle = sorted(samples, key=lambda s: s["seconds"])[len(samples) // 2]
        middle["seconds_all"] = [round(s["seconds"] * 1000, 1) for s in samples]
        return {"backend": "imap", "size": size, "pass": label, **middle}

    helpdesk = Helpdesk(config)
    counter = c.instrument_imap(helpdesk)
    saves = SaveTimer(helpdesk)
    rows.append(run(helpdesk, counter, saves, "1 import"))
    rows.append(run(helpdesk, counter, saves, "2 after labelling"))
    rows.append(run(helpdesk, counter, saves, "idle", idle))
    tickets = len(helpdesk.state.tickets)
    helpdesk.close()

    # an agent selects everything and marks it read: no label changes, but every message's MODSEQ moves
    client = account.client(timeout=120)
    client.select_folder("INBOX")
    client.add_flags("1:*", [b"\\Seen"], silent=True)
    client.logout()
    helpdesk = Helpdesk(config)
    counter = c.instrument_imap(helpdesk)
    saves = SaveTimer(helpdesk)
    rows.append(run(helpdesk, counter, saves, "after 'mark all read'"))
    rows.append(run(helpdesk, counter, saves, "the pass after that"))
    helpdesk.close()

    # the same mailbox and state, as a server without CONDSTORE would have it
    helpdesk = Helpdesk(config)
    counter = c.instrument_imap(helpdesk)
    saves = SaveTimer(helpdesk)
    connect = helpdesk.mailbox.connect

    def connect_without_condstore() -> None:
        connect()
        helpdesk.mailbox.capabilities = helpdesk.mailbox.capabilities - {b"CONDSTORE"}

    helpdesk.mailbox.connect = connect_without_condstore
    run(helpdesk, counter, saves, "warm-up")
    rows.append(run(helpdesk, counter, saves, "idle, no CONDSTORE", idle))
    helpdesk.close()
    for row in rows:
        row.update(tickets=tickets, load_seconds=load)
    return rows


def gmail_rows(size: int, recent: int, idle: int, tmp) -> list[dict]:
    from gmail_fake import GmailFake

    now = c.bench_now()
    rows = []
    with GmailFake(c.SUPPORT, seed=size) as fake:
        started = time.perf_counter()
        for raw, when in mailbox_mail(size, recent, now):
            fake.add_message(raw, internal_date=when)
        load = time.perf_counter() - started
        helpdesk = c.gmail_helpdesk(fake, tmp / f"gmail-{size}", sending=False)
        saves = SaveTimer(helpdesk)
        meter = c.GmailMeter(fake)

        def run(label: str, passes: int = 1) -> dict:
            samples = []
            for _ in range(passes):
                meter.reset()
                saves.seconds = 0.0
                started = time.perf_counter()
                error = ""
                try:
                    report = helpdesk.run_pass()
                except Exception as exc:  # reported, not raised
                    error = f"{type(exc).__name__}: {str(exc)[:160]}"
                    report = None
                seconds = time.perf_counter() - started
                samples.append({"seconds": seconds, **meter.read(), "save": saves.seconds,
                                "messages": report.messages if report else "-",
                                "label_changes": report.label_changes if report else "-", "error": error})
            middle = sorted(samples, key=lambda s: s["seconds"])[len(samples) // 2]
            middle["seconds_all"] = [round(s["seconds"] * 1000, 1) for s in samples]
            return {"backend": "gmail", "size": size, "pass": label, **middle}

        rows.append(run("1 import"))
        rows.append(run("2 after labelling"))
        rows.append(run("idle", idle))
        for message_id in fake.message_ids():  # an agent marks all mail read
            fake.set_labels(message_id, remove=["UNREAD"])
        rows.append(run("after 'mark all read'"))
        rows.append(run("the pass after that"))
        for row in rows:
            row.update(tickets=len(helpdesk.state.tickets), load_seconds=load)
        helpdesk.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000")
    parser.add_argument("--recent", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    c.quiet_logs()
    rows: list[dict] = []
    with c.workdir("idle") as tmp:
        server = c.start_dovecot(tmp)
        if server is not None:
            from servers import SmtpSink

            sink = SmtpSink()  # the backlog's SLA reminders still go out
            try:
                for size in sizes:
                    rows += imap_rows(server, sink, size, min(args.recent, size), args.idle, tmp)
                    print(f"imap {size}: done", flush=True)
            finally:
                sink.stop()
                server.close()
        for size in sizes:
            rows += gmail_rows(size, min(args.recent, size), args.idle, tmp)
            print(f"gmail {size}: done", flush=True)

    print()
    print("IMAP (Dovecot):")
    print(c.table([[r["size"], r["tickets"], r["pass"], r["messages"], r["label_changes"], r["commands"],
                    f"{r['sent']:,} / {r['received']:,}", f"{r['seconds'] * 1000:,.0f} ms", f"{r['save'] * 1000:,.0f} ms",
                    r["summary"] + (f" -> FAILED {r['error']}" if r.get("error") else "")] for r in rows if r["backend"] == "imap"],
                  ["mailbox", "tickets", "pass", "msgs", "label chg", "IMAP cmds", "bytes out / in", "wall",
                   "of which state save", "commands"]))
    print()
    print("Gmail API (fake):")
    print(c.table([[r["size"], r["tickets"], r["pass"], r["messages"], r["label_changes"], r["calls"], r["units"], r["http"],
                    f"{r['seconds'] * 1000:,.0f} ms", f"{r['save'] * 1000:,.0f} ms",
                    c.short_methods(r["by_method"]) + (f" -> FAILED {r['error']}" if r.get("error") else "")]
                   for r in rows if r["backend"] == "gmail"],
                  ["mailbox", "tickets", "pass", "msgs", "label chg", "API calls", "quota units", "HTTP req", "wall",
                   "of which state save", "calls"]))
    result = {}
    for r in rows:
        if r["pass"].startswith("idle"):
            key = f"{r['backend']}_{r['size']}" + ("_nocondstore" if "CONDSTORE" in r["pass"] else "")
            result[key] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                           if k in ("commands", "sent", "received", "seconds", "save", "calls", "units", "http", "summary",
                                    "by_method", "error")}
    for r in rows:
        if r["pass"] == "after 'mark all read'":
            result[f"{r['backend']}_{r['size']}_mark_all_read"] = {
                k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                if k in ("commands", "sent", "received", "seconds", "label_changes", "error", "calls", "units")}
    for r in rows:
        if r["pass"].startswith("2"):
            result[f"{r['backend']}_{r['size']}_after_labelling"] = {
                k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                if k in ("commands", "received", "seconds", "calls", "units", "label_changes")}
    c.emit("idle_pass", {"sizes": sizes, "recent": args.recent, **result})


if __name__ == "__main__":
    main()
