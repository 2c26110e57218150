"""The command line. Each command parses its arguments and calls one function; errors become one clear line."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import click

from mailhelpdesk.errors import MailHelpdeskError

CONFIG_HELP = "Config file (also $MAILHELPDESK_CONFIG; default mailhelpdesk.toml)."


def _config_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """`--config` after the command wins; else the one before it (`mailhelpdesk --config X run`), which also
    reads $MAILHELPDESK_CONFIG; else mailhelpdesk.toml."""
    if value is not None:
        return value
    root = ctx.find_root()
    return (root.obj or {}).get("config_path") or Path(os.environ.get("MAILHELPDESK_CONFIG") or "mailhelpdesk.toml")


CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    default=None,
    callback=_config_path,
    type=click.Path(dir_okay=False, path_type=Path),
    help=CONFIG_HELP,
)


def _now(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime:
    """The time the read-only commands report at: now, or the hidden --now (an ISO time) for reproducible output."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time such as 2027-01-15T09:00:00+00:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


NOW_OPTION = click.option("--now", "now", default=None, hidden=True, callback=_now)


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and the right exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MailHelpdeskError as exc:
            context = click.get_current_context(silent=True)
            if context is not None and context.params.get("log_format") == "json":  # every line JSON, errors too
                from mailhelpdesk.app.logjson import json_line

                click.echo(json_line(f"error: {exc}", "error"), err=True)
            else:
                click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def setup_logging(verbose: int, log_format: str = "text") -> None:
    """One handler, on the root logger: our records and the libraries' (and Python's warnings) each appear
    once, all in the same format (one JSON object per line with --log-format json)."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler()
    if log_format == "json":
        from mailhelpdesk.app.logjson import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    ours = logging.getLogger("mailhelpdesk")
    ours.handlers[:] = []
    ours.propagate = True
    ours.setLevel(level)
    logging.captureWarnings(True)


def daemon_output(log_format: str, daemon: bool) -> Callable[[str], None]:
    """Where `run` reports what it did: the daemon through the log (one line per action, timestamped, JSON with
    --log-format json); one pass (--once, --dry-run) on stdout, as JSON lines with --log-format json."""
    if daemon:
        return logging.getLogger("mailhelpdesk").info
    if log_format == "json":
        from mailhelpdesk.app.logjson import json_line

        return lambda line: click.echo(json_line(line))
    return click.echo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailhelpdesk")
@click.option("--config", "config_path", envvar="MAILHELPDESK_CONFIG", default=None,
              type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """mailhelpdesk: a helpdesk inside your shared mailbox.

    Start with `mailhelpdesk demo` (no account needed), then `mailhelpdesk init`.
    `--config` may come before the command or after it (after it wins).
    """
    ctx.ensure_object(dict)["config_path"] = config_path


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo mailbox and config (default: a new temporary folder).")
@friendly
def demo(directory: Path | None) -> None:
    """Run the whole product on a local sample mailbox: no account, no server."""
    from mailhelpdesk.app.demo.run import run_demo

    run_demo(directory, click.echo)


@main.command()
@CONFIG_OPTION
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.option("--example", is_flag=True,
              help="Print the fully documented example config (every key, its default) and exit.")
@friendly
def init(config_path: Path, force: bool, example: bool) -> None:
    """Ask a few questions and write a config file (the password is never asked for)."""
    from mailhelpdesk.app.wizard import example_config, run_wizard

    if example:
        click.echo(example_config(), nl=False)
        return
    run_wizard(config_path, force, click.prompt, click.echo)


@main.command()
@CONFIG_OPTION
@click.option("--no-browser", is_flag=True,
              help="Headless servers: print the URL to open on any machine, then paste back the address Google "
                   "redirected to (or the code).")
@friendly
def auth(config_path: Path, no_browser: bool) -> None:
    """Authorise access to a Gmail mailbox (OAuth, scope gmail.modify); writes the token file (mode 0600)."""
    from mailhelpdesk.config import load_config
    from mailhelpdesk.backends.gmail import authorize

    authorize(load_config(config_path), open_browser=not no_browser, echo=click.echo,
              prompt=lambda text: click.prompt(text, default="", show_default=False))


@main.command()
@CONFIG_OPTION
@friendly
def check(config_path: Path) -> None:
    """Validate the config, log in, say what the server supports, create labels."""
    from mailhelpdesk.app.commands import check_setup

    problems = 0
    for line in check_setup(config_path):
        if isinstance(line, MailHelpdeskError):  # one line each on stderr; the check goes on
            click.echo(f"error: {line}", err=True)
            problems += 1
        else:
            click.echo(line)
    if problems:
        sys.exit(2)


@main.command()
@CONFIG_OPTION
@click.option("--once", is_flag=True, help="Do one pass and exit.")
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing (implies --once).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly
def run(config_path: Path, once: bool, dry_run: bool, verbose: int, log_format: str) -> None:
    """Run the helpdesk daemon."""
    from mailhelpdesk.app.commands import run_daemon

    setup_logging(max(verbose, 0 if (once or dry_run) else 1), log_format)
    run_daemon(config_path, once=once or dry_run, dry_run=dry_run, echo=daemon_output(log_format, not (once or dry_run)))


@main.command()
@CONFIG_OPTION
@click.option("--print", "mode", flag_value="print", default=True, help="Show the digests (default).")
@click.option("--send", "mode", flag_value="send",
              help="Send them now (each at most once a day, besides the scheduled one); while the daemon runs, it sends "
                   "them at its next pass.")
@NOW_OPTION
@friendly
def digest(config_path: Path, mode: str, now: datetime) -> None:
    """The daily digests, on demand (so system cron can drive them too). --print needs no password."""
    from mailhelpdesk.app.commands import run_digest

    run_digest(config_path, send=mode == "send", echo=click.echo, now=now)


@main.command()
@CONFIG_OPTION
@click.option("--force", is_flag=True, help="Rebuild even though the state file is readable.")
@friendly
def rebuild(config_path: Path, force: bool) -> None:
    """Recover the state (tickets, statuses, assignees, sent log) from the mailbox."""
    from mailhelpdesk.app.commands import run_rebuild

    run_rebuild(config_path, force, click.echo)


@main.command()
@CONFIG_OPTION
@NOW_OPTION
@friendly
def status(config_path: Path, now: datetime) -> None:
    """Health: the last successful pass, the backlog, quarantined mail, the last error (exit 1 when stale)."""
    from mailhelpdesk.app.commands import show_status

    sys.exit(show_status(config_path, click.echo, now))


@main.command()
@CONFIG_OPTION
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["open", "pending", "resolved", "closed", "overdue"], case_sensitive=False),
              help="Only these (repeatable; overdue: open tickets past their due time).")
@click.option("--ignored", is_flag=True, help="List the mail that opened no ticket, and why.")
@NOW_OPTION
@friendly
def tickets(config_path: Path, key: str | None, as_json: bool, statuses: tuple[str, ...], ignored: bool,
            now: datetime) -> None:
    """List tickets, overdue first (or show one, with its history). Needs no password."""
    from mailhelpdesk.app.commands import list_tickets

    output = list_tickets(config_path, key, as_json, statuses, ignored, now)
    click.echo(json.dumps(output, indent=2, ensure_ascii=False) if as_json else output)


@main.command()
@CONFIG_OPTION
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day (YYYY-MM-DD, helpdesk time zone; default: 30 days before --until).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day, included (YYYY-MM-DD, helpdesk time zone; default: now).")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="What to print.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report with charts to this file.")
@NOW_OPTION
@friendly
def report(config_path: Path, since: Any, until: Any, output_format: str, html_file: Path | None, now: datetime) -> None:
    """Figures: tickets, first-response and resolution times, SLA breaches, ratings; by agent, hour, weekday, month."""
    from mailhelpdesk.app.commands import run_report

    if since and until and since > until:
        raise click.BadParameter("--since must be on or before --until", param_hint="--since")
    text, html = run_report(config_path, since, until, output_format, html_file is not None, now)
    click.echo(text, nl=output_format == "json")
    if html_file is not None:
        try:
            html_file.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(html_file), exc.strerror or str(exc)) from None
        click.echo(f"HTML report written to {html_file}", err=True)


@main.command("client-setup")
@CONFIG_OPTION
@click.argument("client", type=click.Choice(["thunderbird", "apple-mail", "outlook"]))
@friendly
def client_setup(config_path: Path, client: str) -> None:
    """Set-up for agents' mail clients: Thunderbird tags as user.js lines; what Apple Mail and Outlook can show."""
    from mailhelpdesk.app.clients import setup_text
    from mailhelpdesk.config import load_config

    text, warnings = setup_text(load_config(config_path, secrets=False), client)  # no mailbox secret needed
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
