"""Run every benchmark (one after the other: they share 2 cores with a Dovecot and an SMTP sink) and print a
compact markdown summary to paste into the README. The scripts' own reports are shown as they run.

Run: python bench/run_all.py [--only ingest_imap,store] [--markdown FILE] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import _common as c

BENCHES = ["startup", "store", "year", "idle_pass", "gmail_quota", "ingest_imap", "big_mail", "hostile_parse"]
TIME_LIMIT = 900  # seconds per script; each is meant to finish in under 3 minutes


def run(name: str, quiet: bool) -> tuple[dict | None, float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name(f"{name}.py"))], cwd=c.REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    result = None
    deadline = time.monotonic() + TIME_LIMIT
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(c.RESULT_PREFIX):
                result = json.loads(line[len(c.RESULT_PREFIX):])
            elif not quiet:
                print("    " + line, end="", flush=True)
            if time.monotonic() > deadline:
                print(f"    {name}: over {TIME_LIMIT} s, stopping it", flush=True)
                break
    finally:
        if proc.poll() is None:
            proc.terminate()  # the script's SIGTERM handler stops its servers
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return result, time.perf_counter() - started, proc.returncode


def short_error(text: str) -> str:
    """'error: FETCH command error: BAD [b'Error in IMAP command UID FETCH: Too long argument (0.001 ...)']' -> 'BAD Too long argument'"""
    import re

    last = re.sub(r"\s*\(\d.*$", "", text.rsplit(": ", 1)[-1]).strip(" '\"]")
    return ("BAD " if " BAD " in text else "") + last


def fmt(value, spec: str = ",.0f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def summary(results: dict[str, dict], durations: dict[str, float]) -> str:
    rows: list[list[str]] = []
    r = results.get("ingest_imap")
    if r and "skipped" not in r:
        n = r["messages"]
        rows += [
            [f"IMAP first import, {n:,} messages (Dovecot)", "plain IMAPClient FETCH + email parser",
             f"{fmt(r['silent_plain_rate'])} msg/s", ""],
            ["", f"helpdesk first pass, acknowledgements and notices off ({r['silent_sent']} SLA reminders sent)",
             f"{fmt(r['silent_rate'])} msg/s = {r['silent_ratio']:.2f} x plain ({r['silent_seconds']:.1f} s)", ">= 0.5 x plain"],
            ["", f"helpdesk first pass, {r['sending_sent']} acknowledgements/notices sent",
             f"{fmt(r['sending_rate'])} msg/s = {r['sending_ratio']:.2f} x plain ({r['sending_seconds']:.1f} s)", ""],
            ["", "where the pass spends its time",
             f"parse_message {r['silent_parse_seconds'] / n * 1000:.1f} ms/msg ({r['silent_parse_seconds']:.1f} s); "
             f"sending {r['sending_send_seconds'] / max(1, r['sending_sent']) * 1000:.0f} ms/mail "
             f"({r['sending_send_seconds']:.1f} s for {r['sending_sent']})", ""],
            ["", "peak RSS during the pass (process)",
             f"{r['silent_rss_peak_mb']:.0f} MB (acks off), {r['sending_rss_peak_mb']:.0f} MB (acks on)", ""],
        ]
    elif r:
        rows.append(["IMAP first import", "skipped", r["skipped"], ""])
    r = results.get("big_mail")
    if r and not r.get("skipped"):
        rows += [
            [f"IMAP backlog of {r['messages']} mails of {r['size_mb']:g} MB (Dovecot)", "peak RSS during the pass",
             f"{r['rss_peak_mb']:.0f} MB ({r['rss_before_mb']:.0f} MB before), {r['tickets']} tickets in {r['seconds']:.1f} s",
             "< 250 MB"],
            ["", "FETCH of message bodies",
             f"{r['fetches']}, the biggest {r['largest_fetch_mb']:.1f} MB (budget {r['budget_mb']:g} MB)", "<= budget"],
            ["", f"the old way (100 whole bodies a FETCH) under {r['old_way_limit_mb']} MB", r["old_way"], ""],
        ]
    elif r:
        rows.append(["IMAP backlog of big mail", "skipped", r["skipped"], ""])
    r = results.get("idle_pass")
    if r:
        sizes = r["sizes"]
        cells = []
        for backend, what in (("imap", "IMAP commands"), ("gmail", "Gmail API calls / quota units")):
            values = []
            for size in sizes:
                v = r.get(f"{backend}_{size}")
                if v is None:
                    continue
                if v.get("error"):
                    values.append(f"{size:,}: FAILS ({short_error(v['error'])})")
                elif backend == "imap":
                    values.append(f"{size:,}: {v['commands']} cmds, {v['received']:,} B in, {v['seconds'] * 1000:.0f} ms")
                else:
                    values.append(f"{size:,}: {v['calls']} / {v['units']}, {v['seconds'] * 1000:.0f} ms")
            if values:
                cells.append([what, "; ".join(values)])
        for i, (what, text) in enumerate(cells):
            rows.append([f"idle pass ({r['recent']:,} tickets; mailbox of {' / '.join(f'{s:,}' for s in sizes)} msgs)"
                         if i == 0 else "", what, text, "flat in mailbox size" if i == 0 else ""])
        nocs = []
        for size in sizes:
            v = r.get(f"imap_{size}_nocondstore")
            if v is None:
                continue
            if v.get("error"):
                nocs.append(f"{size:,}: every pass FAILS ({short_error(v['error'])})")
            else:
                nocs.append(f"{size:,}: {v['commands']} cmds, {v['received']:,} B in, {v['seconds'] * 1000:.0f} ms")
        if nocs:
            rows.append(["", "IMAP without CONDSTORE (full flag scan)", "; ".join(nocs), "grows (documented)"])
        marks = []
        for size in sizes:
            for backend in ("imap", "gmail"):
                v = r.get(f"{backend}_{size}_mark_all_read")
                if v is None:
                    continue
                if v.get("error"):
                    marks.append(f"{backend} {size:,}: every pass FAILS ({short_error(v['error'])})")
                elif backend == "imap":
                    marks.append(f"{backend} {size:,}: {v['commands']} cmds, {v['received']:,} B in")
                else:
                    marks.append(f"{backend} {size:,}: {v['calls']} calls / {v['units']} units")
        if marks:
            rows.append(["", "pass after an agent marks all mail read", "; ".join(marks), "no failure"])
    r = results.get("gmail_quota")
    if r:
        labels = [("first_import", "first import, per message"), ("idle_pass", "idle pass"),
                  ("new_ticket", "per new ticket (ack + notice sent)"), ("customer_reply", "per customer reply"),
                  ("agent_label_change", "per agent priority-label change"),
                  ("resolve_by_label", "per ticket resolved by label (notice sent)"),
                  ("assign_by_label", "per ticket reassigned by label (notice sent)")]
        first = True
        for key, what in labels:
            v = r.get(key)
            if v is None:
                continue
            rows.append([f"Gmail API cost, mailbox of {r['messages']:,} msgs" if first else "", what,
                         f"{v['calls']:.2f} calls, {v['units']:.1f} units", ""])
            first = False
    r = results.get("store")
    if r:
        rows += [
            [f"state file, {r['tickets']:,} tickets", "Store.save / Store.load",
             f"{r['save_s']:.1f} s / {r['load_s']:.1f} s", ""],
            ["", "file size; peak Python memory while loading",
             f"{r['file_mb']:.0f} MB; {r['load_peak_mb']:.0f} MB (tracemalloc"
             + (f", from {r['load_peak_measured_at']:,} tickets)" if r['load_peak_measured_at'] != r['tickets'] else ")"), ""],
        ]
    r = results.get("year")
    if r:
        for i, f in enumerate(r["figures"]):
            rows += [
                [f"a year of history: {r['open']:,} open tickets" if i == 0 else "", f"{f['history']:,} tickets in the archive",
                 f"new mail {f['new_p50'] * 1000:.0f} / {f['new_p95'] * 1000:.0f} ms (p50 / p95), journal "
                 f"{f['bytes_new'] / 1000:.1f} kB; idle pass {f['idle_p50'] * 1000:.0f} ms; daemon {f['daemon_rss']:.0f} MB; "
                 f"`run --once` {f['run --once_s']:.2f} s, `tickets` {f['tickets_s']:.2f} s, `status` {f['status_s']:.2f} s, "
                 f"`report` (the year) {f['report_s']:.1f} s / {f['report_mb']:.0f} MB",
                 "new mail p95 < 0.3 s; commands < 0.5 s; < 150 MB; report < 20 s" if i == 0 else ""],
            ]
        rows.append(["", "per-mail cost, largest / smallest history",
                     f"p50 x{r['flat_p50']:.2f}, p95 x{r['flat_p95']:.2f}, CPU x{r['flat_cpu_p50']:.2f}", "within 1.5 x"])
    r = results.get("startup")
    if r:
        rows.append(["startup", "`mailhelpdesk --help` (median of 10)",
                     f"{r['help_s'] * 1000:.0f} ms (bare python: {r['python_s'] * 1000:.0f} ms)", "< 300 ms"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
            f"{platform.system()} (load average {load:.1f}); `python bench/run_all.py`; servers on 127.0.0.1.")
    return head + "\n\n" + c.table(rows, ["benchmark", "measure", "result", "target"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    parser.add_argument("--markdown", default="", help="also write the summary to this file")
    parser.add_argument("--quiet", action="store_true", help="show only the summary")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or BENCHES
    results, durations = {}, {}
    for name in names:
        print(f"== {name}", flush=True)
        result, seconds, rc = run(name, args.quiet)
        durations[name] = seconds
        print(f"== {name}: {seconds:.0f} s" + ("" if rc == 0 else f" (exit {rc})") + ("" if result else ", no result"),
              flush=True)
        if result:
            results[name] = result
    text = summary(results, durations)
    print("\n" + text)
    print("\n" + ", ".join(f"{n} {s:.0f} s" for n, s in durations.items()))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
