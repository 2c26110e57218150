"""First-import throughput on IMAP: a private Dovecot with 2,000 realistic messages (tests/corpus.py).

(a) plain: IMAPClient, SEARCH SINCE, FETCH BODY.PEEK[] in chunks of 100, email.message_from_bytes(policy=default)
(b) the helpdesk's first Helpdesk.run_pass() on the same mail, twice on two identical accounts:
    "sending"  - acknowledgements and assignment notices go to an SMTP sink (the default config);
    "silent"   - [autoreply] enabled = false, [assignment] notify = false, [resolution] notify = false
                 (only the SLA reminders for the backlog still go out, to the same sink).
Prints messages/s, the ratio helpdesk/plain (target >= 0.5), the peak RSS during each pass, and where the
pass spends its time. Run: python bench/ingest_imap.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import gc
import time
from collections import defaultdict
from datetime import timedelta

import _common as c

FETCH_CHUNK = 100


def plain_fetch(account, since) -> tuple[int, float, int]:
    """(messages, seconds, bytes) for the plain IMAPClient + email parser loop."""
    started = time.perf_counter()
    client = account.client(timeout=120)
    count = size = 0
    try:
        for folder in ("INBOX", "Sent"):
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["SINCE", since.date()]))
            for start in range(0, len(uids), FETCH_CHUNK):
                for uid, data in client.fetch(uids[start : start + FETCH_CHUNK], [b"BODY.PEEK[]"]).items():
                    raw = data[b"BODY[]"]
                    email.message_from_bytes(raw, policy=email.policy.default)
                    count += 1
                    size += len(raw)
    finally:
        client.logout()
    return count, time.perf_counter() - started, size


class Breakdown:
    """Wall time per stage of a pass, by wrapping the helpdesk's collaborators on the instance."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # the package changed shape: time what is still there
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        setattr(owner, attr, timed)

    def attach(self, helpdesk) -> None:
        import mailhelpdesk.app.daemon as daemon

        self._daemon, self._parse = daemon, getattr(daemon, "parse_message", None)
        self.wrap(daemon, "parse_message", "parse_message")
        self.wrap(helpdesk.engine, "on_message", "engine.on_message")
        self.wrap(helpdesk.engine, "on_labels", "engine.on_labels")
        self.wrap(helpdesk.engine, "on_tick", "engine.on_tick")
        self.wrap(helpdesk.store, "save", "store.save (state file)")
        self.wrap(helpdesk.mailbox, "set_labels", "imap set_labels (STORE)")
        for attr in ("open", "send"):  # SMTP up to the final dot (SmtpSender.open), or the whole send
            if hasattr(helpdesk.mailbox.sender, attr):
                self.wrap(helpdesk.mailbox.sender, attr, f"smtp {attr}")
        self.wrap(helpdesk.mailbox, "already_sent", "imap already_sent")
        self.wrap(helpdesk.mailbox, "send", "mailbox.send (smtp + APPEND)")

    def detach(self) -> None:
        if self._parse is not None:
            self._daemon.parse_message = self._parse

    def lines(self, total: float) -> list[str]:
        out = []
        accounted = 0.0
        for name in sorted(self.seconds, key=lambda k: -self.seconds[k]):
            secs = self.seconds[name]
            if name.startswith("smtp "):  # inside mailbox.send
                out.append(f"    {name:<32} {secs:7.2f} s  {self.calls[name]:>6} calls  (inside mailbox.send)")
                continue
            else:
                out.append(f"    {name:<32} {secs:7.2f} s  {self.calls[name]:>6} calls")
            accounted += secs
        out.append(f"    {'rest: IMAP fetch, order, plan':<32} {total - accounted:7.2f} s")
        return out


def helpdesk_pass(config, sink, clock) -> dict:
    from mailhelpdesk.app.daemon import Helpdesk

    helpdesk = Helpdesk(config, clock=clock)
    counter = c.instrument_imap(helpdesk)
    breakdown = Breakdown()
    breakdown.attach(helpdesk)
    from collections import Counter

    sent_before = len(sink.messages)
    gc.collect()
    base = c.rss_mb()
    reset = c.reset_peak_rss()
    started = time.perf_counter()
    report = helpdesk.run_pass()
    seconds = time.perf_counter() - started
    peak = c.peak_rss_mb()
    breakdown.detach()
    state = helpdesk.state
    helpdesk.close()
    return {
        "messages": report.messages, "seconds": seconds, "rate": report.messages / seconds,
        "rss_before_mb": base, "rss_peak_mb": peak, "peak_is_pass_only": reset,
        "tickets": len(state.tickets), "ignored": len(state.ignored), "sent": len(sink.messages) - sent_before,
        "sent_kinds": dict(Counter(str(m.message["X-Mailhelpdesk-Kind"]) for m in sink.messages[sent_before:])),
        "imap_commands": len(counter.commands), "imap_summary": counter.summary(),
        "breakdown": breakdown.lines(seconds), "state_kb": config.resolve(config.helpdesk.state_file).stat().st_size / 1024,
        "quarantined": len(report.quarantined),
        "save_calls": breakdown.calls["store.save (state file)"], "save_seconds": breakdown.seconds["store.save (state file)"],
        "send_seconds": breakdown.seconds["mailbox.send (smtp + APPEND)"],
        "parse_seconds": breakdown.seconds["parse_message"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    c.quiet_logs()
    from servers import ImapAccount

    now = c.bench_now()
    t0 = time.perf_counter()
    corpus = c.corpus_messages(args.messages, now)
    mail = [(m.folder, m.raw, m.when) for m in corpus]
    print(f"corpus: {len(mail)} messages ({sum(f == 'Sent' for f, _, _ in mail)} in Sent), "
          f"{sum(len(r) for _, r, _ in mail) / 1e6:.1f} MB, built in {time.perf_counter() - t0:.1f} s")
    with c.workdir("ingest") as tmp:
        with c.mail_servers("ingest_imap", tmp) as (server, sink):
            if server is None:
                return
            accounts = {name: ImapAccount.create(server, prefix=name) for name in ("sending", "silent")}
            for name, account in accounts.items():
                secs = c.load_imap(account, mail)
                print(f"APPEND {len(mail)} messages to {account.username} (MULTIAPPEND, one connection): "
                      f"{secs:.1f} s, {c.fmt_rate(len(mail), secs)}")
            since = now - timedelta(days=14)
            results = {}
            for name, account in accounts.items():
                n, secs, size = plain_fetch(account, since)
                config = c.imap_config(account, sink, tmp / f"state-{name}", sending=name == "sending")
                hd = helpdesk_pass(config, sink, lambda: now)
                results[name] = {"plain_messages": n, "plain_seconds": secs, "plain_rate": n / secs,
                                 "plain_mb": size / 1e6, **hd, "ratio": hd["rate"] / (n / secs)}

    print()
    rows = []
    for name, r in results.items():
        rows.append([name, r["plain_messages"], f"{r['plain_seconds']:.2f} s", f"{r['plain_rate']:,.0f}",
                     f"{r['seconds']:.2f} s", f"{r['rate']:,.0f}", f"{r['ratio']:.2f}",
                     f"{r['rss_before_mb']:.0f} -> {r['rss_peak_mb']:.0f} MB", r["tickets"], r["sent"]])
    print(c.table(rows, ["variant", "messages", "plain", "plain msg/s", "helpdesk pass", "helpdesk msg/s",
                         "ratio (>= 0.5)", "RSS before -> peak in pass", "tickets", "mails sent"]))
    for name, r in results.items():
        print(f"\n{name}: first pass {r['seconds']:.2f} s for {r['messages']} messages; {r['imap_commands']} IMAP commands "
              f"({r['imap_summary']}); state file {r['state_kb']:.0f} kB; quarantined {r['quarantined']}; "
              f"sent {r['sent_kinds'] or 'nothing'}")
        print("\n".join(r["breakdown"]))
    if not all(r["peak_is_pass_only"] for r in results.values()):
        print("(peak RSS is ru_maxrss since process start: /proc/self/clear_refs was not writable)")
    c.emit("ingest_imap", {
        "messages": results["sending"]["messages"],
        **{f"{name}_{key}": round(value, 3) if isinstance(value, float) else value
           for name, r in results.items()
           for key, value in r.items() if key in ("plain_rate", "rate", "ratio", "seconds", "rss_peak_mb", "rss_before_mb",
                                                "sent", "tickets", "save_calls", "save_seconds", "send_seconds", "parse_seconds",
                                                "plain_seconds")},
        "breakdown_sending": results["sending"]["breakdown"],
        "breakdown_silent": results["silent"]["breakdown"],
    })


if __name__ == "__main__":
    main()
