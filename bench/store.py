"""The state file (TinyDB, mailhelpdesk.store.state.Store) at 20,000 tickets: save and load times, file size, and the
peak Python memory (tracemalloc) while loading.

Each ticket is realistic: 2-5 messages (Message-IDs, refs, participants), a thread id, its labels and 4-9
history entries; the state also holds the index (every Message-ID, ref and thread of every ticket), two sent
records per ticket (acknowledgement, assignment notice), 2,000 ignored robot mails and the per-sender log.
Run: python bench/store.py [--tickets 20000] [--save-repeat 2] [--load-repeat 1] [--tracemalloc-tickets 2000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import _common as c


def build_state(n: int, seed: int = 1):
    from mailhelpdesk.model import HistoryEntry, Ignored, Priority, SentRecord, State, Status, Ticket
    from mailhelpdesk.model import ref_key, thread_key

    rng = random.Random(seed)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    state = State()
    statuses = [Status.CLOSED] * 6 + [Status.RESOLVED] * 2 + [Status.PENDING, Status.OPEN]
    priorities = [Priority.NORMAL] * 6 + [Priority.HIGH, Priority.LOW, Priority.URGENT]
    agents = ["Alice", "Bob", "Carol", "Dan"]
    for number in range(1, n + 1):
        key = f"HD-{number}"
        created = now - timedelta(minutes=rng.randint(10, 365 * 24 * 60))
        customer = f"customer{rng.randint(1, n // 2)}@{rng.choice(['gmail.com', 'example.org', 'shop.example', 'mail.ru'])}"
        k = rng.randint(2, 5)
        message_ids = tuple(f"<CA{rng.getrandbits(128):032x}@mail.gmail.com>" for _ in range(k))
        refs = tuple(f"INBOX:1700000000:{number * 5 + i}" for i in range(k))
        thread = f"{rng.getrandbits(60):x}"
        status, priority, assignee = rng.choice(statuses), rng.choice(priorities), rng.choice(agents)
        history = [HistoryEntry(created, "created", f"priority {priority.value} (default)"),
                   HistoryEntry(created, "assigned", f"{assignee} (round_robin)"),
                   HistoryEntry(created + timedelta(seconds=3), "acknowledged", customer)]
        at = created
        for i in range(rng.randint(1, 6)):
            at += timedelta(minutes=rng.randint(5, 3000))
            history.append(HistoryEntry(at, rng.choice(["agent replied", "customer replied", "status"]),
                                        rng.choice([assignee, customer, "open -> pending (label)"])))
        ticket = Ticket(
            key=key, number=number, customer=customer, subject=f"Order {rng.randint(10**5, 10**6)}: where is my parcel?",
            created_at=created, customer_name=f"Customer {number}", status=status, priority=priority, assignee=assignee,
            updated_at=at, first_response_at=created + timedelta(hours=2), due_at=created + timedelta(hours=24),
            resolved_at=at if status in (Status.RESOLVED, Status.CLOSED) else None,
            closed_at=at if status == Status.CLOSED else None,
            message_ids=message_ids, refs=refs,
            labels_applied=(f"Helpdesk/Assignee/{assignee}", f"Helpdesk/Priority/{priority.value.title()}",
                            f"Helpdesk/Status/{status.value.title()}"),
            participants=(customer, "alice@example.com"), thread_ids=(thread,), history=tuple(history),
        )
        state.tickets[key] = ticket
        for mid in message_ids:
            state.index[mid] = key
        for ref in refs:
            state.index[ref_key(ref)] = key
        state.index[thread_key(thread)] = key
        for kind in ("ack", "assigned"):
            mid = f"<mhd.{kind}.{key}.{rng.getrandbits(64):016x}@example.com>"
            state.sent[mid] = SentRecord(f"{kind}:{key}", mid, customer, kind, key, created, done=True)
            state.index[mid] = key
        state.sender_log.setdefault(customer, []).append(created)
    for i in range(n // 10):
        mid = f"<robot.{i}.{rng.getrandbits(64):x}@bounce.example>"
        state.ignored[mid] = Ignored(mid, f"INBOX:1700000000:{10**7 + i}", "automatic (Auto-Submitted: auto-replied)",
                                     f"noreply{i}@news.example", "Your weekly digest", now - timedelta(days=rng.randint(1, 300)))
        state.index[f"ref:INBOX:1700000000:{10**7 + i}"] = "ignored:" + mid
    state.next_number = n + 1
    state.cursors = {"INBOX": {"uidvalidity": 1700000000, "uidnext": n * 5 + 100, "modseq": 123456}}
    return state


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    samples, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples, result


def traced_load_peak(tickets: int, tmp) -> tuple[float, float]:
    """(peak, kept) MB of Python memory (tracemalloc) while Store.load() reads a state of `tickets` tickets."""
    from mailhelpdesk.store.state import Store

    store = Store(tmp / f"traced-{tickets}.json")
    store.save(build_state(tickets, seed=2))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = store.load()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return (peak - base) / 1e6, (current - base) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20000)
    parser.add_argument("--save-repeat", type=int, default=2)
    parser.add_argument("--load-repeat", type=int, default=1)
    parser.add_argument("--tracemalloc-tickets", type=int, default=2000,
                        help="tracemalloc makes the load ~6x slower, so it runs on a smaller state and is scaled "
                             "linearly; pass the full --tickets value to measure it directly (takes minutes)")
    args = parser.parse_args()
    import functools
    import typing

    from mailhelpdesk.model import SentRecord, Ticket
    from mailhelpdesk.store.state import AtomicJSONStorage, Store, decode, encode

    started = time.perf_counter()
    state = build_state(args.tickets)
    print(f"built {len(state.tickets):,} tickets, {len(state.index):,} index entries, {len(state.sent):,} sent records, "
          f"{len(state.ignored):,} ignored in {time.perf_counter() - started:.1f} s", flush=True)
    with c.workdir("store") as tmp:
        store = Store(tmp / "state.json")
        save_s, save_all, _ = timed(lambda: store.save(state), args.save_repeat)
        size = store.path.stat().st_size
        print(f"saved: {save_s:.2f} s, {size / 1e6:.1f} MB", flush=True)
        gc.collect()
        rss_before = c.rss_mb()
        c.reset_peak_rss()
        load_s, load_all, loaded = timed(store.load, args.load_repeat)
        rss_peak = c.peak_rss_mb()
        print(f"loaded: {load_s:.2f} s", flush=True)
        same = loaded.tickets == state.tickets and loaded.index == state.index and loaded.sent == state.sent
        del loaded

        # where the time goes (decode on a sample, scaled)
        text = store.path.read_text(encoding="utf-8")
        json_s, _, data = timed(lambda: json.loads(text), 1)
        sample = 2000
        ticket_docs = list(data["tickets"].values())[:sample]
        sent_docs = list(data["sent"].values())[:sample]
        scale_t = len(data["tickets"]) / max(1, len(ticket_docs))
        scale_s = len(data["sent"]) / max(1, len(sent_docs))
        decode_t, _, _ = timed(lambda: [decode(Ticket, d) for d in ticket_docs], 1)
        decode_sent, _, _ = timed(lambda: [decode(SentRecord, d) for d in sent_docs], 1)
        hints = typing.get_type_hints
        typing.get_type_hints = functools.cache(hints)  # what-if: the type hints of each class computed once
        try:
            cached_t, _, _ = timed(lambda: [decode(Ticket, d) for d in ticket_docs], 1)
            cached_sent, _, _ = timed(lambda: [decode(SentRecord, d) for d in sent_docs], 1)
        finally:
            typing.get_type_hints = hints
        encode_s, _, _ = timed(lambda: [encode(t) for t in state.tickets.values()], 1)
        dumps_s, _, _ = timed(lambda: json.dumps(data, ensure_ascii=False, separators=(",", ":")), 1)
        storage = AtomicJSONStorage(tmp / "probe.json")
        dump_file_s, _, _ = timed(lambda: storage.write(data), 1)  # json.dump to the file (streaming) + fsync
        fsync_s, _, _ = timed(lambda: _write_fsync(tmp / "probe2.json", text), 1)
        del data, text

        print("tracemalloc load ...", flush=True)
        traced_peak, traced_kept = traced_load_peak(args.tracemalloc_tickets, tmp)
        factor = args.tickets / args.tracemalloc_tickets

    decode_total = decode_t * scale_t + decode_sent * scale_s
    cached_total = cached_t * scale_t + cached_sent * scale_s
    print()
    rows = [
        ["Store.save (encode + TinyDB + json.dump + fsync)", f"{save_s:.2f} s", ", ".join(f"{s:.2f}" for s in save_all)],
        ["  encode() of all tickets", f"{encode_s:.2f} s", ""],
        ["  AtomicJSONStorage.write (json.dump to the file + fsync)", f"{dump_file_s:.2f} s",
         f"json.dumps of the same data: {dumps_s:.2f} s; write + fsync of the text: {fsync_s:.2f} s"],
        ["Store.load (json + TinyDB + decode)", f"{load_s:.2f} s", ", ".join(f"{s:.2f}" for s in load_all)],
        ["  json.loads of the file", f"{json_s:.2f} s", ""],
        ["  decode() of tickets + sent records", f"{decode_total:.2f} s",
         f"from a {sample:,} sample; with typing.get_type_hints cached per class: {cached_total:.2f} s"],
        ["file size", f"{size / 1e6:.1f} MB", f"{size / len(state.tickets):,.0f} bytes per ticket"],
        ["RSS while loading", f"{rss_before:.0f} -> {rss_peak:.0f} MB", "process RSS before the load -> peak during it"],
        [f"peak Python memory while loading (tracemalloc)", f"{traced_peak * factor:.0f} MB",
         f"measured {traced_peak:.0f} MB at {args.tracemalloc_tickets:,} tickets"
         + (f", x{factor:g} (linear)" if factor != 1 else "") + f"; {traced_kept * factor:.0f} MB kept after the load"],
        ["round trip equal", str(same), ""],
    ]
    print(c.table(rows, [f"{args.tickets:,} tickets", "median", "notes"]))
    print(f"\nEvery pass ends with a Store.save, an idle one too: at this size each idle pass spends about "
          f"{save_s:.1f} s rewriting {size / 1e6:.0f} MB, and every start of the daemon {load_s:.0f} s loading it.")
    c.emit("store", {"tickets": args.tickets, "save_s": round(save_s, 3), "load_s": round(load_s, 3),
                     "file_mb": round(size / 1e6, 2), "load_peak_mb": round(traced_peak * factor, 1),
                     "load_peak_measured_at": args.tracemalloc_tickets,
                     "load_kept_mb": round(traced_kept * factor, 1), "decode_s": round(decode_total, 3),
                     "decode_cached_hints_s": round(cached_total, 3), "json_loads_s": round(json_s, 3),
                     "encode_s": round(encode_s, 3), "json_dumps_s": round(dumps_s, 3),
                     "storage_write_s": round(dump_file_s, 3), "fsync_s": round(fsync_s, 3),
                     "rss_before_load_mb": round(rss_before, 1), "rss_peak_load_mb": round(rss_peak, 1),
                     "roundtrip_equal": same})


def _write_fsync(path, text: str) -> None:
    import os

    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


if __name__ == "__main__":
    main()
