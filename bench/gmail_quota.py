"""Gmail API calls and quota units (tests/gmail_fake.py counts both) on a mailbox of a few thousand realistic
messages (tests/corpus.py), with the default config (acknowledgements, assignment notices, resolution notices on):

  first import           per message imported
  idle pass              no new mail, no label changes
  new ticket             N new customer requests, one pass, divided by N (and with the pass after it)
  customer reply         N replies into known open tickets
  agent label change     the priority label changed on one message of K distinct tickets
  resolve by label       the status label set to Resolved on K tickets (the customer gets a resolution notice)
  assign by label        the assignee label changed on K tickets (the agent gets an assignment notice)

"with the pass after" adds the next (otherwise idle) pass, which reads back the label changes the pass made.
Run: python bench/gmail_quota.py [--messages 3000] [-n 50] [-k 50]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import _common as c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("-n", type=int, default=50, help="new tickets / customer replies")
    parser.add_argument("-k", type=int, default=50, help="tickets whose labels an agent changes")
    args = parser.parse_args()
    c.quiet_logs()
    from gmail_fake import GmailFake

    from mailhelpdesk.model import Priority, Status

    now = c.bench_now()
    mail = c.corpus_messages(args.messages, now)
    rows: list[dict] = []
    with c.workdir("gmailq") as tmp, GmailFake(c.SUPPORT, seed=5) as fake:
        for m in mail:
            fake.add_message(m.raw, label_ids=("SENT",) if m.folder == "Sent" else ("INBOX", "UNREAD"), internal_date=m.when)
        helpdesk = c.gmail_helpdesk(fake, tmp / "state")
        meter = c.GmailMeter(fake)

        def measure(name: str, per: int, unit: str, *, follow: bool = True) -> dict:
            meter.reset()
            started = time.perf_counter()
            report = helpdesk.run_pass()
            seconds = time.perf_counter() - started
            first = meter.read()
            row = {"what": name, "per": per, "unit": unit, "seconds": seconds, **first,
                   "messages": report.messages, "label_changes": report.label_changes,
                   "sends": first["by_method"].get("users.messages.send", 0)}
            if follow:
                meter.reset()
                helpdesk.run_pass()
                after = meter.read()
                row.update(after_calls=after["calls"], after_units=after["units"], after_by_method=after["by_method"])
            rows.append(row)
            print(f"{name}: {first['calls']} calls, {first['units']} units ({seconds:.1f} s)", flush=True)
            return row

        measure("first import", len(mail), "message")
        for _ in range(2):  # settle: the pass after the import, and one more
            helpdesk.run_pass()
        measure("idle pass", 1, "pass", follow=False)

        # new tickets: new customers, new conversations, arriving now
        when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        for i in range(args.n):
            fake.add_message(c.small_message(900_000 + i, when, domain="newcustomer.example"), internal_date=when)
        measure("new ticket", args.n, "ticket")

        # customer replies into open/pending tickets (distinct tickets)
        state = helpdesk.state
        open_tickets = [t for t in state.tickets.values() if t.status in (Status.OPEN, Status.PENDING) and t.message_ids]
        targets = open_tickets[: args.n]
        when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
        for i, ticket in enumerate(targets):
            raw = c.small_message(950_000 + i, when, sender=ticket.customer, reply_to=ticket.message_ids[0],
                                  subject="Re: " + ticket.subject)
            fake.add_message(raw, internal_date=when)
        measure("customer reply", len(targets), "reply")

        def relabel(name: str, pick, change) -> None:
            chosen = [t for t in helpdesk.state.tickets.values() if pick(t) and t.refs][: args.k]
            for ticket in chosen:
                add, remove = change(ticket)
                fake.set_labels(ticket.refs[0], add=[add], remove=[remove])
            measure(name, len(chosen), "ticket")

        root = helpdesk.config.helpdesk.label_root
        relabel("agent label change (priority)",
                lambda t: t.status in (Status.OPEN, Status.PENDING) and t.priority != Priority.HIGH,
                lambda t: (f"{root}/Priority/High", f"{root}/Priority/{t.priority.value.title()}"))
        relabel("resolve by label",
                lambda t: t.status in (Status.OPEN, Status.PENDING),
                lambda t: (f"{root}/Status/Resolved", f"{root}/Status/{t.status.value.title()}"))
        relabel("assign by label",
                lambda t: t.status == Status.RESOLVED and t.assignee == "Alice",
                lambda t: (f"{root}/Assignee/Bob", f"{root}/Assignee/Alice"))
        meter.reset()
        helpdesk.run_pass()
        settle = meter.read()
        helpdesk.close()

    print()
    table = []
    for r in rows:
        per = max(1, r["per"])
        with_after = (f"{(r['calls'] + r['after_calls']) / per:.2f} / {(r['units'] + r['after_units']) / per:.1f}"
                      if "after_calls" in r else "-")
        table.append([r["what"], f"{r['per']} {r['unit']}{'s' if r['per'] != 1 else ''}", f"{r['calls'] / per:.2f}",
                      f"{r['units'] / per:.1f}", with_after, f"{r['sends'] / per:.2f}",
                      c.short_methods(r["by_method"])])
    print(c.table(table, ["per ...", "sample", "API calls", "quota units", "calls / units with the pass after",
                          "mails sent", "calls in the pass (total)"]))
    print(f"\n(the pass after the last change: {settle['calls']} calls, {settle['units']} units; "
          f"messages.send costs 100 units, messages.get/modify 5, batchModify 50, history.list 2)")
    out = {}
    for r in rows:
        key = r["what"].split(" (")[0].replace(" ", "_")
        per = max(1, r["per"])
        out[key] = {"calls": round(r["calls"] / per, 3), "units": round(r["units"] / per, 2), "sample": r["per"],
                    "sends": round(r["sends"] / per, 2)}
        if "after_calls" in r:
            out[key].update(calls_with_after=round((r["calls"] + r["after_calls"]) / per, 3),
                            units_with_after=round((r["units"] + r["after_units"]) / per, 2))
    c.emit("gmail_quota", {"messages": len(mail), **out})


if __name__ == "__main__":
    main()
