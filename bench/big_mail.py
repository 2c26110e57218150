"""Memory on a backlog of big mail (IMAP): 100 messages of 8 MB (a short text and a base64 attachment each) on a
private Dovecot, taken in by one Helpdesk.run_pass(). Prints the peak RSS of the pass (target < 250 MB), the
FETCH commands and the most mail one of them asked for (the adapter's budget, 32 MB), and how long it took.

For comparison it also fetches the same mail the way the adapter did before it bounded its batches (FETCH
BODY.PEEK[] of 100 UIDs at once) in a child process under a memory limit (--limit-mb, default 1024): that is
where every pass used to end in MemoryError. Run: python bench/big_mail.py [--messages 100] [--size-mb 8]
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import _common as c


def big_message(i: int, when: datetime, size: int) -> bytes:
    """A customer's mail with `size` bytes in all: a line of text, then a base64 attachment (incompressible)."""
    head = "\r\n".join([
        f"From: Customer {i} <customer{i}@customer.example>",
        f"To: Support <{c.SUPPORT}>",
        f"Subject: Scan of the broken part, order {100000 + i}",
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <big.{i}.{when.timestamp():.0f}@customer.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Hello, the scan of the broken part of order {100000 + i} is attached. Can you replace it?",
        "--b1",
        'Content-Type: application/pdf; name="scan.pdf"',
        'Content-Disposition: attachment; filename="scan.pdf"',
        "Content-Transfer-Encoding: base64",
        "",
        "",
    ]).encode()
    tail = b"\r\n--b1--\r\n"
    room = max(size - len(head) - len(tail), 0)
    payload = base64.encodebytes(os.urandom(room * 3 // 4 + 3)).replace(b"\n", b"\r\n")[:room]
    return head + payload.rsplit(b"\r\n", 1)[0] + tail


class FetchMeter:
    """Every UID FETCH of the helpdesk's IMAP connection: how many, and the most mail one asked for (by the sizes
    the server reported for those UIDs)."""

    def __init__(self, sizes: dict[int, int]) -> None:
        self.sizes = sizes
        self.fetches: list[tuple[int, int]] = []  # (messages, bytes asked) of each FETCH of message bodies

    def attach(self, client) -> None:
        imap = client._imap
        send = imap.send

        def watching(data: bytes) -> None:
            found = re.match(rb"\S+ UID FETCH ([\d,:]+) \(([^)]*)", data)
            if found and b"BODY" in found.group(2):
                uids = set()
                for item in found.group(1).split(b","):
                    low, _, high = item.partition(b":")
                    uids.update(range(int(low), int(high or low) + 1))
                self.fetches.append((len(uids), sum(min(self.sizes.get(u, 0), KEEP) for u in uids)))
            return send(data)

        imap.send = watching


KEEP = 0  # set from the adapter in main()


def old_way(account, limit_mb: int) -> str:
    """The fetch as it was (100 whole bodies per FETCH), in a child under RLIMIT_AS: what happened."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(c.TESTS)!r})
resource.setrlimit(resource.RLIMIT_AS, ({limit_mb} << 20, {limit_mb} << 20))
from imapclient import IMAPClient
client = IMAPClient({account.host!r}, port={account.port}, ssl=False, timeout=120)
client.login({account.username!r}, {account.password!r})
client.select_folder("INBOX", readonly=True)
uids = client.search("ALL")
try:
    got = client.fetch(uids[:100], [b"BODY.PEEK[]", b"INTERNALDATE", b"FLAGS"])
    print("fetched", len(got), "messages")
except MemoryError:
    print("MemoryError")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def main() -> None:
    global KEEP
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size-mb", type=float, default=8)
    parser.add_argument("--limit-mb", type=int, default=1024, help="memory limit of the old-way child process")
    args = parser.parse_args()
    c.quiet_logs()
    from servers import ImapAccount

    from mailhelpdesk.app.daemon import Helpdesk
    from mailhelpdesk.backends import imap as adapter

    KEEP = adapter.KEEP_LIMIT
    now = c.bench_now()
    size = int(args.size_mb * 1024 * 1024)
    with c.workdir("bigmail") as tmp:
        with c.mail_servers("big_mail", tmp) as (server, sink):
            if server is None:
                return
            account = ImapAccount.create(server, prefix="big")
            started = time.perf_counter()
            client = account.client(timeout=300)
            for i in range(args.messages):  # one at a time: the loader itself stays small
                when = now - timedelta(hours=2) + timedelta(seconds=i)
                client.append("INBOX", big_message(i, when, size), msg_time=when)
            client.select_folder("INBOX", readonly=True)
            sizes = {uid: d[b"RFC822.SIZE"] for uid, d in client.fetch(client.search("ALL"), [b"RFC822.SIZE"]).items()}
            client.logout()
            total = sum(sizes.values())
            print(f"mailbox: {len(sizes)} messages, {total / 2**20:,.0f} MiB in all, appended in "
                  f"{time.perf_counter() - started:.1f} s")

            config = c.imap_config(account, sink, tmp / "state")
            helpdesk = Helpdesk(config, clock=lambda: now)
            meter = FetchMeter(sizes)
            connect = helpdesk.mailbox.connect

            def metered_connect() -> None:
                connect()
                meter.attach(helpdesk.mailbox.client)

            helpdesk.mailbox.connect = metered_connect
            gc.collect()
            before = c.rss_mb()
            reset = c.reset_peak_rss()
            started = time.perf_counter()
            report = helpdesk.run_pass()
            seconds = time.perf_counter() - started
            peak = c.peak_rss_mb()
            tickets = len(helpdesk.state.tickets)
            helpdesk.close()
            budget = helpdesk.mailbox.fetch_budget
            most = max((b for _, b in meter.fetches), default=0)
            print(f"helpdesk pass: {report.messages} messages -> {tickets} tickets, {len(report.quarantined)} "
                  f"quarantined, {len(sink.messages)} mails sent, in {seconds:.1f} s")
            print(f"RSS before the pass {before:.0f} MB, peak during it {peak:.0f} MB (target < 250 MB)"
                  + ("" if reset else " (ru_maxrss since start: /proc/self/clear_refs not writable)"))
            print(f"{len(meter.fetches)} FETCH of message bodies; the biggest asked for {most / 2**20:.1f} MiB "
                  f"(budget {budget / 2**20:.0f} MiB; each message fetched up to {KEEP / 2**20:.0f} MiB)")
            old = old_way(account, args.limit_mb)
            print(f"the old way (FETCH BODY.PEEK[] of 100 at once) under a {args.limit_mb} MB limit: {old}")
    c.emit("big_mail", {
        "messages": report.messages, "size_mb": args.size_mb, "tickets": tickets, "seconds": round(seconds, 2),
        "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1), "peak_is_pass_only": reset,
        "fetches": len(meter.fetches), "largest_fetch_mb": round(most / 2**20, 2), "budget_mb": budget / 2**20,
        "old_way": old, "old_way_limit_mb": args.limit_mb,
    })


if __name__ == "__main__":
    main()
