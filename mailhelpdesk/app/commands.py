"""What the CLI commands do, as plain functions (easy to call from tests and from the demo)."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

from mailhelpdesk.config import load_config
from mailhelpdesk.errors import ConfigError, MailHelpdeskError
from mailhelpdesk.capabilities import capabilities
from mailhelpdesk.model import Priority, Status, Ticket


def check_setup(config_path: Path) -> Iterable[str | MailHelpdeskError]:
    """`mailhelpdesk check`: lines to show, and a MailHelpdeskError for each problem found (one line each, naming
    the key to fix). Every part is checked even when an earlier one failed, so one run shows every mistake."""
    from mailhelpdesk.core.labels import scheme_for
    from mailhelpdesk.backends import open_mailbox
    from mailhelpdesk.core.samples import sample_contexts
    from mailhelpdesk.core.mail.render import check_templates

    config = load_config(config_path)  # a config that cannot be read stops here (one line, exit 2)
    yield f"config {config.path}: ok (helpdesk {config.helpdesk.name!r} <{config.helpdesk.address}>, backend {config.mailbox.backend})"
    yield f"agents: {', '.join(a.name for a in config.agents) or 'none (tickets stay unassigned)'}; assignment {config.assignment.strategy}"
    for warning in insecure_settings(config):
        yield f"warning: {warning}"
    problems = 0
    try:
        yield f"state file {state_location(config)}: its folder is writable"
    except MailHelpdeskError as exc:
        problems += 1
        yield exc
    h = config.helpdesk
    templates_dir = str(config.resolve(h.templates_dir)) if h.templates_dir else ""
    checked, broken = check_templates(templates_dir, h.language, sample_contexts(config))
    for line in broken:
        problems += 1
        yield ConfigError(line)
    yield f"templates: {checked} checked ({h.language}{', with ' + templates_dir if templates_dir else ''}), " + (
        f"{len(broken)} broken" if broken else "all render")
    mailbox = open_mailbox(config)
    try:
        mailbox.connect()
        yield from mailbox.describe()
        yield from mailbox.prepare(scheme_for(config).to_create())
        yield from authserv_report(config, mailbox, datetime.now(UTC))
    except MailHelpdeskError as exc:
        problems += 1
        yield exc
    finally:
        mailbox.close()
    if capabilities(config).sends_by_smtp:
        from mailhelpdesk.backends.smtp import SmtpSender

        try:
            yield SmtpSender(config.smtp).check()
        except MailHelpdeskError as exc:
            problems += 1
            yield exc
    if not problems:
        yield ("all good: see what the first pass would do with `mailhelpdesk run --dry-run`, then start it with "
               "`mailhelpdesk run`")


def state_location(config) -> Path:
    """The state file's path, once its folder is known to exist and to take new files (the state is written to
    a temp file there and renamed); otherwise one line naming [helpdesk] state_file, exit code 2."""
    import os
    import tempfile

    from mailhelpdesk.errors import StateFileError

    path = config.resolve(config.helpdesk.state_file)
    folder = path.parent
    key = f"[helpdesk] state_file {path}"
    try:
        if not folder.exists():
            raise StateFileError(f"{key}: the folder {folder} does not exist; create it or correct state_file")
        if not folder.is_dir():
            raise StateFileError(f"{key}: {folder} is not a folder; correct state_file")
        if path.is_dir():
            raise StateFileError(f"{key} is a folder; name a file in it instead")
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StateFileError(f"{key}: cannot write in {folder} ({exc.strerror or exc}); make the folder writable "
                             "for this user or correct state_file") from None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StateFileError(f"{key}: this user cannot read and write it; fix its owner or mode (0600)")
    return path


def start_up_checks(helpdesk, send: bool = True) -> None:
    """`run`, before the first pass: log in to the mailbox (and SMTP when we may send). A mistake here stops `run`
    with one line (exit 2) instead of a daemon that retries for ever; once it runs, faults are retried. An SMTP
    server that is not there or busy for now is no mistake: the helpdesk starts, and mail waits in the outbox."""
    import logging

    from mailhelpdesk.errors import SmtpUnavailableError

    log = logging.getLogger("mailhelpdesk")
    helpdesk.mailbox.connect()
    try:
        what = helpdesk.mailbox.describe()
    finally:
        helpdesk.mailbox.close()  # the first pass connects (and prepares the labels) itself
    config, state = helpdesk.config, helpdesk.state
    mode = (f"first run: the last {config.imap.import_days} days become tickets quietly" if state.first_run
            else f"{len(state.tickets)} tickets known")
    smtp = ""
    if send and capabilities(helpdesk.config).sends_by_smtp:
        from mailhelpdesk.backends.smtp import SmtpSender

        try:
            smtp = "; " + SmtpSender(helpdesk.config.smtp).check()
            helpdesk.sending_works()  # an outage a previous process saw is over
        except SmtpUnavailableError as exc:  # down, refusing, silent, 421: start anyway, send once it answers
            log.warning("%s; starting anyway: mail waits in the outbox and goes once the SMTP server answers", exc)
            helpdesk.sending_failed(str(exc))
            smtp = "; SMTP unavailable for now (mail waits)"
    what = [line for line in what if not line.startswith("capabilities:")]  # `check` lists them all
    log.info(
        "mailhelpdesk starting: %s%s; %d agent(s); state %s; %s", "; ".join(what), smtp, len(config.agents),
        helpdesk.store.path, mode)


def insecure_settings(config) -> list[str]:
    warnings = []
    for section in ("imap", "smtp"):
        sub = getattr(config, section)
        if section in capabilities(config).sections and sub.security == "none" and sub.host not in ("127.0.0.1", "localhost", "::1"):
            warnings.append(f"[{section}] security = \"none\" sends the password unencrypted to {sub.host}")
        if sub.password and not (sub.password_env or sub.password_file):
            warnings.append(f"[{section}] password is written in the config file; prefer password_env or password_file")
    if config.agents and not config.commands.require_authentication:
        warnings.append("[commands] require_authentication = false: anyone who writes From: an agent's address can "
                        "close, assign and annotate tickets by mail; set trusted_authserv_id and remove this line")
    return warnings


def authserv_report(config, mailbox, now: datetime, limit: int = 100) -> list[str]:
    """`check`: the authserv-ids at the top of recent inbound mail's Authentication-Results, and the one to put
    in `[commands] trusted_authserv_id`. Read-only: fetches (BODY.PEEK) at most `limit` messages of a week."""
    from datetime import timedelta

    from mailhelpdesk.core.mail.parse import parse_message
    from mailhelpdesk.core.judge.authentication import seen_authserv_ids

    key = "[commands] trusted_authserv_id"
    headers, read = [], 0
    try:
        for raw in mailbox.changes({}, now - timedelta(days=7)).messages:
            if raw.folder_role != "inbox":
                continue
            headers.append(parse_message(raw.raw).auth_headers)
            read += 1
            if read >= limit:
                break
    except MailHelpdeskError as exc:
        return [f"warning: could not read recent mail for {key}: {exc}"]
    seen = seen_authserv_ids(headers)
    listed = ", ".join(f"{name} ({count})" for name, count in seen.most_common(5))
    trusted = config.commands.trusted_authserv_id.lower()
    lines = [f"Authentication-Results in {read} recent inbound messages: {listed or 'none'}"]
    if trusted and trusted in seen:
        lines.append(f"commands by mail: {key} = {trusted!r} vouches for {seen[trusted]} of {read} recent messages")
    elif seen:
        suggestion = seen.most_common(1)[0][0]
        what = f"{key} = {trusted!r} is in none of them" if trusted else f"{key} is not set"
        lines.append(f"warning: {what}, so commands by mail are refused; the receiving server is probably "
                     f"{suggestion!r}: set {key} = \"{suggestion}\" (see README, 'Setting up commands safely')")
    elif read:
        lines.append(f"warning: recent mail carries no Authentication-Results, so commands by mail are refused "
                     "unless [commands] require_authentication = false (which anyone can forge)")
    return lines


def run_daemon(config_path: Path, once: bool, dry_run: bool, echo: Callable[[str], None]) -> None:
    from mailhelpdesk.app.daemon import Helpdesk, InstanceLock, PassReport, serve

    config = load_config(config_path)

    def show(report: PassReport) -> None:
        for line in report.done:  # quarantined mail is logged as an error by the daemon (once)
            echo(line)

    # a dry run changes nothing, so it takes no lock (and leaves none): it can preview a config beside the daemon
    lock = contextlib.nullcontext() if dry_run else InstanceLock(state_location(config))
    with lock:  # a state folder that cannot be written: one line, exit 2
        helpdesk = Helpdesk(config)
        start_up_checks(helpdesk, send=not dry_run)  # a server setting that is wrong: one line, exit 2
        helpdesk.progress = Progress()
        if not once:
            serve(helpdesk, show)
            return
        try:
            report = helpdesk.run_pass(dry_run=dry_run)
        finally:
            helpdesk.close()
    if dry_run:
        echo(f"dry run: {report.messages} new message(s), {report.label_changes} label change(s); nothing was changed")
        sends = ", ".join(f"{n} {kind}" for kind, n in sorted(report.sends.items(), key=lambda kv: -kv[1]))
        echo(f"would send {sum(report.sends.values())} mail(s){': ' + sends if sends else ''}")
        for note in report.notes:
            echo(f"  {note}")
        for line in report.planned:
            echo(f"would {line}")
        return
    show(report)
    tickets = len(helpdesk.state.tickets)
    waiting = sum(1 for r in helpdesk.state.sent.values() if not r.done)
    failing = helpdesk.sending.reason if helpdesk.sending.failing_since else ""
    echo(f"pass done: {report.messages} new message(s), {len(report.done)} action(s); {tickets} ticket(s) in total"
         + (f"; {waiting} mail(s) wait in the outbox" if waiting else "") + (f" (sending fails: {failing})" if failing else ""))


class Progress:
    """Progress of a long import: a counter on a terminal, a log line every few seconds otherwise."""

    EVERY = 5.0  # seconds between log lines
    QUIET_BELOW = 200  # a pass over fewer messages needs no progress

    def __init__(self, stream=None):
        import sys

        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def __call__(self, seen: int, expected: int | None) -> None:
        import logging
        import time

        if not expected or expected < self.QUIET_BELOW:
            return
        if self.tty:
            end = "\n" if seen >= expected else ""
            self.stream.write(f"\rimporting: {seen} of {expected} messages ({100 * seen // expected} %){end}")
            self.stream.flush()
            return
        moment = time.monotonic()
        if moment - self.last >= self.EVERY or seen == expected:
            self.last = moment
            logging.getLogger("mailhelpdesk").info("importing: %d of %d messages", seen, expected)


def sla(ticket: Ticket, now: datetime):  # -> sla_state.SlaState
    """The one answer to "is this ticket late?" (due_at, waiting, overdue, breached), for every command here."""
    from mailhelpdesk.core.sla_state import sla_state

    return sla_state(ticket, now)


def ticket_json(ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    state = sla(ticket, now) if now is not None else None
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
        "waiting": state.waiting if state else None,
        "overdue": state.overdue if state else None,
        "breached": state.breached if state else None,
        "message_ids": list(ticket.message_ids),
        "related": list(ticket.related),
        "bounced": ticket.bounced,
        "rating": ticket.rating,
        "history": [{"at": when(h.at), "what": h.what, "detail": h.detail} for h in ticket.history],
    }


TICKET_FILTERS = (*(s.value for s in Status), "overdue")


def list_tickets(config_path: Path, key: str | None, as_json: bool, statuses: Iterable[str], ignored: bool,
                 now: datetime | None = None) -> Any:
    """`mailhelpdesk tickets`: the list (overdue first, then by status, priority and due time), one ticket, or
    the ignored mail. `statuses` are status names or "overdue" (any of them)."""
    from mailhelpdesk.errors import MailHelpdeskError
    from mailhelpdesk.store.state import Store

    now = now or datetime.now(UTC)
    wanted = {s.lower() for s in statuses}
    unknown = sorted(wanted - set(TICKET_FILTERS))
    if unknown:
        raise MailHelpdeskError(f"unknown --status {', '.join(unknown)} (choose from {', '.join(TICKET_FILTERS)})")
    config = load_config(config_path, secrets=False)
    tz = config.helpdesk.tz
    store = Store(config.resolve(config.helpdesk.state_file))
    if ignored:
        rows = sorted(store.load(("ignored",)).ignored.values(), key=lambda i: i.at)
        if as_json:
            return [{"message_id": i.message_id, "from": i.sender, "subject": i.subject, "reason": i.reason,
                     "at": i.at.astimezone(UTC).isoformat(), "ticket": i.ticket} for i in rows]
        if not rows:
            return "no ignored mail"
        lines = [f"{'RECEIVED':22} {'FROM':30} {'SUBJECT':40} REASON"]
        lines += [f"{i.at.astimezone(tz):%Y-%m-%d %H:%M %Z}".ljust(22) + f" {fit(i.sender, 30)} {fit(i.subject, 40)} {i.reason}"
                  + (f" (ticket {i.ticket})" if i.ticket else "") for i in rows]
        return "\n".join(lines)
    if key:
        ticket = store.find(key.upper())  # the working set's, or the archive's
        if ticket is None:
            raise MailHelpdeskError(f"no ticket {key}")
        return ticket_json(ticket, now) if as_json else show_ticket(ticket, tz, now)
    if wanted and "overdue" not in wanted:  # statuses alone: a query, only the matches decoded
        rows, total = store.with_status(wanted)
    else:
        tickets = store.load(("tickets",)).tickets
        rows, total = [t for t in tickets.values() if not wanted or t.status.value in wanted or sla(t, now).overdue], len(tickets)
    from mailhelpdesk.core.sla_state import work_order

    rows.sort(key=lambda t: work_order(t, now))  # the digests' order
    if as_json:
        return [ticket_json(t, now) for t in rows]
    if not rows and total:
        return f"no {' or '.join(sorted(wanted))} tickets ({total} in total)"
    return table(rows, tz, now)


def fit(text: str, width: int) -> str:
    """`text` in exactly `width` columns: padded, or cut with an ellipsis (never silently)."""
    text = " ".join(text.split())
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def table(rows: list[Ticket], tz, now: datetime | None = None) -> str:
    """One line per ticket. DUE is the time an answer is due while the customer waits ("answered" once the
    latest word is answered); SLA says OVERDUE while it is late now, "breached" when a due time was missed."""
    if not rows:
        return "no tickets yet"
    now = now or datetime.now(UTC)
    key_width = max(3, *(len(t.key) for t in rows))
    lines = [f"{'KEY':{key_width}} {'STATUS':8} {'PRIORITY':8} {'ASSIGNEE':12} {'DUE':21} {'SLA':8} {'CUSTOMER':28} SUBJECT"]
    for t in rows:
        state = sla(t, now)
        if state.waiting and t.due_at:
            due = f"{t.due_at.astimezone(tz):%a %d %b %H:%M %Z}"
        elif t.first_response_at:
            due = "answered"
        else:
            due = "-"
        flag = "OVERDUE" if state.overdue else "breached" if state.breached else "-"
        lines.append(f"{t.key:{key_width}} {t.status.value:8} {t.priority.value:8} {fit(t.assignee or '-', 12)} "
                     f"{fit(due, 21)} {flag:8} {fit(t.customer, 28)} {fit(t.subject, 60).rstrip()}")
    return "\n".join(lines)


def show_ticket(t: Ticket, tz, now: datetime | None = None) -> str:
    def fmt(d: datetime | None) -> str:
        return d.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if d else "-"

    state = sla(t, now or datetime.now(UTC))
    if state.overdue:
        standing = f"OVERDUE since {fmt(t.due_at)}"
    elif state.waiting:
        standing = f"waiting, answer due {fmt(t.due_at)}" + (" (a due time was missed before)" if state.breached else "")
    else:
        standing = "breached (a due time was missed)" if state.breached else "on time"
    lines = [
        f"{t.key}  {t.subject}",
        f"  customer:  {t.customer_name + ' ' if t.customer_name else ''}<{t.customer}>",
        f"  status:    {t.status.value}    priority: {t.priority.value}    assignee: {t.assignee or '-'}",
        f"  created:   {fmt(t.created_at)}    first response: {fmt(t.first_response_at)}    due: {fmt(t.due_at)}",
        f"  sla:       {standing}",
        f"  messages:  {len(t.message_ids)}" + (f"    related: {', '.join(t.related)}" if t.related else "") + ("    BOUNCED" if t.bounced else ""),
        "  history:",
    ]
    lines += [f"    {fmt(h.at)}  {h.what}{': ' + h.detail if h.detail else ''}" for h in t.history]
    return "\n".join(lines)


__all__ = ["check_setup", "run_daemon", "list_tickets", "ticket_json", "Priority"]


def run_digest(config_path: Path, send: bool, echo: Callable[[str], None], now: datetime | None = None,
               wait: float | None = None) -> None:
    """`mailhelpdesk digest`: the digests as they would go out now; with send, send them (once a day each).
    While the daemon runs (it holds the lock) the daemon is asked to send them at its next pass; `wait` is how
    long to wait for it (default: one poll interval and a half minute)."""
    from mailhelpdesk.app.daemon import Helpdesk, InstanceLock, keep_secret
    from mailhelpdesk.core.duties.digests import build_digests
    from mailhelpdesk.app.effects import Effects
    from mailhelpdesk.core.engine import Engine
    from mailhelpdesk.errors import LockError
    from mailhelpdesk.store.state import Store

    config = load_config(config_path, secrets=send)
    now = now or datetime.now(UTC)
    path = config.resolve(config.helpdesk.state_file)
    if not send:
        state = Store(path).load()
        mails = build_digests(Engine(config).context(state), state, now)
        for mail in mails:
            echo(f"To: {mail.to}\nSubject: {mail.subject}\n\n{mail.body}\n{'-' * 72}")
        if not mails:
            echo("no digest to send: nobody has open tickets and no lead is configured ([sla] escalate_to)")
        return
    lock = InstanceLock(path)
    try:
        lock.__enter__()
    except LockError:
        _ask_daemon_for_digests(config, path, now, echo, wait)
        return
    try:
        helpdesk = Helpdesk(config)
        try:
            helpdesk.mailbox.connect()
            keep_secret(helpdesk.engine.ctx.mail, helpdesk.state, now)
            mails = build_digests(helpdesk.engine.context(helpdesk.state), helpdesk.state, now, asked=True)
            done = Effects(config, helpdesk.mailbox, helpdesk.save).apply(helpdesk.state, list(mails), now)
            helpdesk.save()
        finally:
            helpdesk.close()
    finally:
        lock.__exit__()
    for mail in mails:
        echo(("sent" if any(mail.to in line for line in done) else "already sent today") + f": {mail.kind} to {mail.to}")


def _ask_daemon_for_digests(config, path: Path, now: datetime, echo: Callable[[str], None], wait: float | None) -> None:
    """The daemon holds the lock: leave it a request and report what its next pass sent (from the state file)."""
    import time

    from mailhelpdesk.app import digest_request
    from mailhelpdesk.core.duties.digests import build_digests
    from mailhelpdesk.core.engine import Engine
    from mailhelpdesk.errors import StoreError
    from mailhelpdesk.store.state import Store

    state = Store(path).load()
    mails = build_digests(Engine(config).context(state), state, now, asked=True)
    if not mails:
        echo("no digest to send: nobody has open tickets and no lead is configured ([sla] escalate_to)")
        return
    before = {m.message_id for m in mails if m.message_id in state.sent and state.sent[m.message_id].done}
    request = digest_request.ask(path, now)
    echo("the daemon is running: asked it to send the digests at its next pass")
    deadline = time.monotonic() + (config.mailbox.poll_interval + 30 if wait is None else wait)
    sent: dict = {}
    while time.monotonic() < deadline:
        if not request.exists():
            try:
                sent = Store(path).load(("sent",)).sent  # only the sent log, every 0.2 s
            except StoreError:  # caught between two writes: look again
                sent = {}
            if all(mail.message_id in sent and sent[mail.message_id].done for mail in mails):
                break
        time.sleep(0.2)
    else:
        if request.exists():
            echo("the daemon has not taken the request yet; it sends the digests at its next pass "
                 f"(a request older than {digest_request.EXPIRES.total_seconds() / 3600:.0f} h is dropped)")
            return
    for mail in mails:
        record = sent.get(mail.message_id)
        done = record is not None and record.done
        echo(("already sent today" if mail.message_id in before else "sent" if done else
              "not confirmed yet (see the daemon's log)") + f": {mail.kind} to {mail.to}")


def run_rebuild(config_path: Path, force: bool, echo: Callable[[str], None]) -> None:
    """`mailhelpdesk rebuild`: recover the state from the mailbox (the old file, if any, is kept as .bak)."""
    from mailhelpdesk.app.daemon import InstanceLock
    from mailhelpdesk.errors import MailHelpdeskError, StoreError
    from mailhelpdesk.backends import open_mailbox
    from mailhelpdesk.store.rebuild import rebuild_from
    from mailhelpdesk.store.state import Store

    config = load_config(config_path)
    path = config.resolve(config.helpdesk.state_file)
    with InstanceLock(path):
        if path.exists() and path.stat().st_size > 0:
            try:
                Store(path).load()
                readable = True
            except StoreError:
                readable = False
            if readable and not force:
                raise MailHelpdeskError(f"{path} is readable; use --force to rebuild it anyway (it is kept as {path.name}.bak)")
        mailbox = open_mailbox(config)
        try:
            # the old file stays until this succeeded
            state = rebuild_from(config, mailbox, datetime.now(UTC), progress=Progress(), archive=Store(path).archive)
        finally:
            mailbox.close()
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
            echo(f"kept the old state as {path.name}.bak")
        Store(path).save(state)  # atomic: the old state or the new one, never neither
    statuses: dict[str, int] = {}
    for ticket in state.tickets.values():
        statuses[ticket.status.value] = statuses.get(ticket.status.value, 0) + 1
    echo(f"rebuilt {len(state.tickets)} ticket(s) ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items())) or 'none'}), "
         f"{len(state.sent)} sent message(s) on record, {len(state.ignored)} ignored; saved to {path}")


def sending_line(config, sent: int, waiting: int) -> str:
    """Mail sent in the last 24 hours against the provider's daily limit, with a warning from 80 %: past the
    limit every later acknowledgement fails until the next day."""
    limit = config.mailbox.daily_send_limit
    line = f"sent in the last 24 h: {sent}" + (f" of {limit} allowed a day" if limit else "") + (
        f"; {waiting} waiting in the outbox" if waiting else "")
    if limit and sent >= 0.8 * limit:
        line = (f"WARNING: {line}: close to the provider's daily sending limit ([mailbox] daily_send_limit); "
                "turn per-ticket notices off ([assignment] notify = false) to save sends for customers")
    return line


def show_status(config_path: Path, echo: Callable[[str], None], now: datetime | None = None) -> int:
    """`mailhelpdesk status`: health for humans and for monitoring (exit 1 when stale). Needs no password."""
    from mailhelpdesk.app.health import Health, Sending, summary

    config = load_config(config_path, secrets=False)
    path = config.resolve(config.helpdesk.state_file)
    health = Health(path).read()
    now = now or datetime.now(UTC)
    if not health and not path.exists():
        echo(f"no state file at {path}, and no daemon has reported here: start it (`mailhelpdesk run`), or give this "
             "command the daemon's environment (under systemd: STATE_DIRECTORY=/var/lib/mailhelpdesk, see README)")
        return 1
    last = datetime.fromisoformat(health["last_success"]) if health.get("last_success") else None
    if last:
        echo(f"last successful pass: {last.astimezone(config.helpdesk.tz):%Y-%m-%d %H:%M:%S %Z} "
             f"({int((now - last).total_seconds() // 60)} min ago)")
    else:
        echo("last successful pass: never")
    figures = health.get("summary") if Health(path).newer_than_state() else None
    if figures is None:  # no daemon has run since the state last changed: count from the state itself
        from mailhelpdesk.store.state import Store

        figures = summary(Store(path).load(), now)
    echo(f"open tickets: {figures['open']} ({figures['overdue']} overdue, {figures['unassigned']} unassigned); "
         f"pending: {figures['pending']}")
    echo(f"quarantined messages: {figures['quarantined']}")
    for ref, reason in figures["quarantine"].items():
        echo(f"  {ref}: {reason}")
    limited = figures["ack_rate_limited"]
    if limited.get("at") and now - datetime.fromisoformat(limited["at"]) < timedelta(hours=24):
        echo(f"WARNING: acknowledgement rate limit reached at {limited['at']}: {limited.get('skipped', '?')} "
             f"requests not acknowledged ([autoreply] max_per_hour = {limited.get('limit', '?')}); a flood or a "
             f"mail loop? see `mailhelpdesk tickets`")
    echo(sending_line(config, figures["sent_last_day"], figures["waiting"]))
    sending = Sending.restored(health.get("sending"))
    for line in sending_health(sending, figures["waiting"], config.helpdesk.tz, now):
        echo(line)
    withheld = figures.get("acks_withheld_7d", 0)
    if withheld:
        keys = figures.get("acks_withheld_keys", [])
        latest = f"; the latest: {', '.join(keys)}" if keys else ""
        echo(f"acknowledgements withheld (7 days): {withheld}{latest} (`mailhelpdesk tickets KEY` says why)")
    if health.get("clock"):
        echo(clock_line(health["clock"], config.helpdesk.tz))
    broken = figures["template_error"]
    if broken.get("at") and now - datetime.fromisoformat(broken["at"]) < timedelta(hours=24):
        echo(f"TEMPLATE ERROR at {broken['at']}: {broken.get('error', '?')}; fix it (`mailhelpdesk check` names "
             "every broken template)")
    for repair in health.get("repairs", []):
        echo(f"repaired at {repair.get('at', '?')}: {repair.get('what', '?')}")
    if health.get("last_error"):
        echo(f"last error: {health['last_error']} (at {health.get('last_error_at', '?')})")
    if health.get("unsaved"):
        echo(f"NOT SAVING: {health['unsaved']} (the daemon sends nothing until it can save its state)")
    stale = last is None or (now - last).total_seconds() > config.mailbox.stale_after
    if stale:
        echo(f"STALE: no successful pass within {config.mailbox.stale_after} s")
    lost = bool(health.get("state_written")) and not (path.exists() and path.stat().st_size)
    if lost:  # a daemon ran here, and its state is gone: it refuses to start until `rebuild` (app/daemon.py)
        echo(f"STATE LOST: {path} is missing or empty; run `mailhelpdesk rebuild`")
    # monitoring hears of an outage that lasts (customers get no acknowledgement), not of a passing one
    down = sending.failing_since is not None and (now - sending.failing_since).total_seconds() > config.mailbox.stale_after
    return 1 if stale or lost or health.get("unsaved") or down else 0


RECOVERY_SHOWN = timedelta(hours=24)  # `status` mentions an outage that ended this long ago


def sending_health(sending, waiting: int, tz, now: datetime) -> list[str]:
    """`status`'s words on an SMTP outage (a health.Sending as the daemon left it): failing since when, why, and
    what waits; or when the last one ended, for a day."""

    def at(moment: datetime) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"

    if sending.failing_since is not None:
        return [f"SENDING FAILING since {at(sending.failing_since)}: {sending.reason or 'the SMTP server does not take mail'}; "
                f"{waiting} mail(s) waiting in the outbox (they go once the server answers)"]
    if sending.recovered_at is not None and now - sending.recovered_at < RECOVERY_SHOWN:
        lasted = f" after failing since {at(sending.failed_from)}" if sending.failed_from else ""
        return [f"sending recovered at {at(sending.recovered_at)}{lasted}"]
    return []


def clock_line(data: dict, tz) -> str:
    """`status`'s words while the daemon does not trust the system clock (core/clock_guard.py)."""
    from mailhelpdesk.core.clock_guard import span

    off = timedelta(seconds=float(data.get("off") or 0))
    deciding = datetime.fromisoformat(data["deciding_on"]).astimezone(tz)
    way = "ahead of" if off > timedelta(0) else "behind"
    return (f"CLOCK: the system clock is {span(off)} {way} the time the daemon decides on ({deciding:%Y-%m-%d %H:%M %Z}): "
            "timed duties (reminders, escalations, digests) follow that time until mail from the server confirms the "
            "system clock; check the machine's time synchronisation (timedatectl)")


def run_report(config_path: Path, since: datetime | None, until: datetime | None, output_format: str, html: bool,
               now: datetime) -> tuple[str, str]:
    """`mailhelpdesk report`: the figures of the days from `since` to `until` (local dates, both included) as a
    table, CSV or JSON, and the HTML page when asked for. Streams the work in hand, then the archive from the
    period's month on."""
    import json

    from mailhelpdesk.config import calendar
    from mailhelpdesk.core import report as figures
    from mailhelpdesk.store.state import Store

    config = load_config(config_path, secrets=False)
    tz = config.helpdesk.tz
    start = since.replace(tzinfo=tz).astimezone(UTC) if since else None
    end = (until + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC) if until else None
    store = Store(config.resolve(config.helpdesk.state_file))
    earliest = start or (end or now) - figures.DEFAULT_PERIOD
    result = figures.compute_report(store.tickets(store.load(("tickets",)), since=earliest, fields=figures.FIELDS),
                                    tz, start, end, now, calendar=calendar(config))
    text = {"json": lambda: json.dumps(figures.to_json(result), indent=2, ensure_ascii=False),
            "csv": lambda: figures.to_csv(result)}.get(output_format, lambda: figures.format_table(result))()
    return text, figures.to_html(result, f"{config.helpdesk.name} report") if html else ""
