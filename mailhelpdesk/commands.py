"""What the CLI commands do, as plain functions (easy to call from tests and from the demo)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import load_config
from .model import Priority, Status, Ticket


def check_setup(config_path: Path) -> Iterable[str]:
    from .labels import scheme_for
    from .mailbox import open_mailbox

    config = load_config(config_path)
    yield f"config {config.path}: ok (helpdesk {config.helpdesk.name!r} <{config.helpdesk.address}>, backend {config.mailbox.backend})"
    yield f"agents: {', '.join(a.name for a in config.agents) or 'none (tickets stay unassigned)'}; assignment {config.assignment.strategy}"
    for warning in insecure_settings(config):
        yield f"warning: {warning}"
    mailbox = open_mailbox(config)
    mailbox.connect()
    try:
        yield from mailbox.describe()
        yield from mailbox.prepare(scheme_for(config).to_create())
        if config.mailbox.backend == "imap":
            from .smtp import SmtpSender

            yield SmtpSender(config.smtp).check()
    finally:
        mailbox.close()
    yield "all good: start the helpdesk with `mailhelpdesk run`"


def insecure_settings(config) -> list[str]:
    warnings = []
    for section in ("imap", "smtp"):
        sub = getattr(config, section)
        if config.mailbox.backend == "imap" and sub.security == "none" and sub.host not in ("127.0.0.1", "localhost", "::1"):
            warnings.append(f"[{section}] security = \"none\" sends the password unencrypted to {sub.host}")
        if sub.password and not (sub.password_env or sub.password_file):
            warnings.append(f"[{section}] password is written in the config file; prefer password_env or password_file")
    return warnings


def run_daemon(config_path: Path, once: bool, dry_run: bool, echo: Callable[[str], None]) -> None:
    from .daemon import Helpdesk, InstanceLock, PassReport, serve

    config = load_config(config_path)

    def show(report: PassReport) -> None:
        for line in report.done:
            echo(line)
        for line in report.quarantined:
            echo(f"quarantined {line}")

    with InstanceLock(config.resolve(config.helpdesk.state_file)):
        helpdesk = Helpdesk(config)
        if not once:
            serve(helpdesk, show)
            return
        try:
            report = helpdesk.run_pass(dry_run=dry_run)
        finally:
            helpdesk.close()
    if dry_run:
        echo(f"dry run: {report.messages} new message(s), {report.label_changes} label change(s); nothing was changed")
        for note in report.notes:
            echo(f"  {note}")
        for line in report.planned:
            echo(f"would {line}")
        return
    show(report)
    tickets = len(helpdesk.state.tickets)
    echo(f"pass done: {report.messages} new message(s), {len(report.done)} action(s); {tickets} ticket(s) in total")


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    return {
        "key": ticket.key,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "assignee": ticket.assignee,
        "customer": ticket.customer,
        "customer_name": ticket.customer_name,
        "subject": ticket.subject,
        "created_at": when(ticket.created_at),
        "updated_at": when(ticket.updated_at),
        "first_response_at": when(ticket.first_response_at),
        "resolved_at": when(ticket.resolved_at),
        "closed_at": when(ticket.closed_at),
        "due_at": when(ticket.due_at),
        "message_ids": list(ticket.message_ids),
        "related": list(ticket.related),
        "bounced": ticket.bounced,
        "rating": ticket.rating,
        "history": [{"at": when(h.at), "what": h.what, "detail": h.detail} for h in ticket.history],
    }


def list_tickets(config_path: Path, key: str | None, as_json: bool, statuses: Iterable[str], ignored: bool) -> Any:
    from .errors import MailHelpdeskError
    from .store import Store

    config = load_config(config_path)
    state = Store(config.resolve(config.helpdesk.state_file)).load()
    if ignored:
        rows = sorted(state.ignored.values(), key=lambda i: i.at)
        if as_json:
            return [{"message_id": i.message_id, "from": i.sender, "subject": i.subject, "reason": i.reason,
                     "at": i.at.isoformat(), "ticket": i.ticket} for i in rows]
        return "\n".join(f"{i.at:%Y-%m-%d %H:%M}  {i.sender:30.30}  {i.subject[:40]:40}  {i.reason}" for i in rows) or "no ignored mail"
    if key:
        ticket = state.tickets.get(key.upper())
        if ticket is None:
            raise MailHelpdeskError(f"no ticket {key}")
        return ticket_json(ticket) if as_json else show_ticket(ticket, config.helpdesk.tz)
    wanted = {s.lower() for s in statuses}
    rows = [t for t in state.tickets.values() if not wanted or t.status.value in wanted]
    rows.sort(key=lambda t: (_status_order(t.status), t.priority.rank, t.due_at or t.created_at))
    if as_json:
        return [ticket_json(t) for t in rows]
    return table(rows, config.helpdesk.tz)


def _status_order(status: Status) -> int:
    return list(Status).index(status)


def table(rows: list[Ticket], tz) -> str:
    if not rows:
        return "no tickets yet"
    lines = [f"{'KEY':8} {'STATUS':9} {'PRIORITY':8} {'ASSIGNEE':10} {'DUE':16} {'CUSTOMER':28} SUBJECT"]
    for t in rows:
        due = t.due_at.astimezone(tz).strftime("%a %d %b %H:%M") if t.due_at and t.first_response_at is None else "answered" if t.first_response_at else "-"
        lines.append(
            f"{t.key:8} {t.status.value:9} {t.priority.value:8} {(t.assignee or '-'):10.10} {due:16} {t.customer:28.28} {t.subject[:60]}"
        )
    return "\n".join(lines)


def show_ticket(t: Ticket, tz) -> str:
    def fmt(d: datetime | None) -> str:
        return d.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if d else "-"

    lines = [
        f"{t.key}  {t.subject}",
        f"  customer:  {t.customer_name + ' ' if t.customer_name else ''}<{t.customer}>",
        f"  status:    {t.status.value}    priority: {t.priority.value}    assignee: {t.assignee or '-'}",
        f"  created:   {fmt(t.created_at)}    first response: {fmt(t.first_response_at)}    due: {fmt(t.due_at)}",
        f"  messages:  {len(t.message_ids)}" + (f"    related: {', '.join(t.related)}" if t.related else "") + ("    BOUNCED" if t.bounced else ""),
        "  history:",
    ]
    lines += [f"    {fmt(h.at)}  {h.what}{': ' + h.detail if h.detail else ''}" for h in t.history]
    return "\n".join(lines)


__all__ = ["check_setup", "run_daemon", "list_tickets", "ticket_json", "Priority"]


def run_digest(config_path: Path, send: bool, echo: Callable[[str], None]) -> None:
    """`mailhelpdesk digest`: the digests as they would go out now; with send, send them (once a day each)."""
    from .daemon import Helpdesk, InstanceLock
    from .digest import build_digests
    from .effects import Effects

    config = load_config(config_path)
    now = datetime.now(UTC)
    if not send:
        from .engine import Engine
        from .store import Store

        state = Store(config.resolve(config.helpdesk.state_file)).load()
        mails = build_digests(Engine(config), state, now)
        for mail in mails:
            echo(f"To: {mail.to}\nSubject: {mail.subject}\n\n{mail.body}\n{'-' * 72}")
        if not mails:
            echo("no digest to send: nobody has open tickets and no lead is configured ([sla] escalate_to)")
        return
    with InstanceLock(config.resolve(config.helpdesk.state_file)):
        helpdesk = Helpdesk(config)
        try:
            helpdesk.mailbox.connect()
            mails = build_digests(helpdesk.engine, helpdesk.state, now)
            done = Effects(config, helpdesk.mailbox, helpdesk.save).apply(helpdesk.state, list(mails), now)
            helpdesk.save()
        finally:
            helpdesk.close()
    for mail in mails:
        echo(("sent" if any(mail.to in line for line in done) else "already sent today") + f": {mail.kind} to {mail.to}")


def run_rebuild(config_path: Path, force: bool, echo: Callable[[str], None]) -> None:
    """`mailhelpdesk rebuild`: recover the state from the mailbox (the old file, if any, is kept as .bak)."""
    from .daemon import Helpdesk, InstanceLock
    from .errors import MailHelpdeskError, StoreError
    from .mailbox import open_mailbox
    from .rebuild import rebuild_state
    from .store import Store

    config = load_config(config_path)
    path = config.resolve(config.helpdesk.state_file)
    with InstanceLock(path):
        if path.exists():
            try:
                Store(path).load()
                readable = True
            except StoreError:
                readable = False
            if readable and not force:
                raise MailHelpdeskError(f"{path} is readable; use --force to rebuild it anyway (it is kept as {path.name}.bak)")
            path.replace(path.with_name(path.name + ".bak"))
            echo(f"kept the old state as {path.name}.bak")
        helpdesk = Helpdesk(config, open_mailbox(config))
        try:
            state = rebuild_state(helpdesk, datetime.now(UTC))
        finally:
            helpdesk.close()
        Store(path).save(state)
    statuses: dict[str, int] = {}
    for ticket in state.tickets.values():
        statuses[ticket.status.value] = statuses.get(ticket.status.value, 0) + 1
    echo(f"rebuilt {len(state.tickets)} ticket(s) ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items())) or 'none'}), "
         f"{len(state.sent)} sent message(s) on record, {len(state.ignored)} ignored; saved to {path}")


def show_status(config_path: Path, echo: Callable[[str], None]) -> int:
    """`mailhelpdesk status`: health for humans and for monitoring (exit 1 when stale)."""
    from .daemon import Health
    from .digest import overdue
    from .store import Store

    config = load_config(config_path)
    path = config.resolve(config.helpdesk.state_file)
    health = Health(path).read()
    now = datetime.now(UTC)
    last = datetime.fromisoformat(health["last_success"]) if health.get("last_success") else None
    if last:
        echo(f"last successful pass: {last.astimezone(config.helpdesk.tz):%Y-%m-%d %H:%M:%S %Z} "
             f"({int((now - last).total_seconds() // 60)} min ago)")
    else:
        echo("last successful pass: never")
    state = Store(path).load()
    active = [t for t in state.tickets.values() if t.status.value == "open"]
    echo(f"open tickets: {len(active)} ({sum(overdue(t, now) for t in active)} overdue, "
         f"{sum(1 for t in active if not t.assignee)} unassigned); "
         f"pending: {sum(1 for t in state.tickets.values() if t.status.value == 'pending')}")
    echo(f"quarantined messages: {len(state.quarantine)}")
    for ref, reason in list(state.quarantine.items())[:20]:
        echo(f"  {ref}: {reason}")
    if health.get("last_error"):
        echo(f"last error: {health['last_error']} (at {health.get('last_error_at', '?')})")
    stale = last is None or (now - last).total_seconds() > config.mailbox.stale_after
    if stale:
        echo(f"STALE: no successful pass within {config.mailbox.stale_after} s")
    return 1 if stale else 0
