"""`mailhelpdesk init`: a few questions, one valid config file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from .errors import ConfigError


def _q(text: str) -> str:
    """A TOML basic string (JSON's string syntax is valid TOML for what we write)."""
    return json.dumps(text, ensure_ascii=False)


def parse_agents(text: str) -> list[tuple[str, str]]:
    agents = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        found = re.fullmatch(r"(.*?)\s*<([^<>\s]+@[^<>\s]+)>", part)
        if found and found.group(1):
            agents.append((found.group(1).strip('" '), found.group(2)))
        elif "@" in part:
            agents.append((part.split("@")[0].title(), part))
        else:
            raise ConfigError(f"agent {part!r}: write it as 'Name <email>'")
    return agents


def render_config(answers: dict) -> str:
    lines = [
        "# mailhelpdesk config, written by `mailhelpdesk init`. Every key is documented in config.example.toml.",
        "[helpdesk]",
        f"name = {_q(answers['name'])}",
        f"address = {_q(answers['address'])}",
        f"timezone = {_q(answers['timezone'])}",
        'state_file = "mailhelpdesk-state.json"',
        "",
        "[mailbox]",
        f"backend = {_q(answers['backend'])}",
        "",
    ]
    if answers["backend"] == "imap":
        lines += [
            "[imap]",
            f"host = {_q(answers['imap_host'])}",
            f"username = {_q(answers['username'])}",
            f"password_env = {_q(answers['password_env'])}",
            "",
            "[smtp]",
            f"host = {_q(answers['smtp_host'])}",
            f"username = {_q(answers['username'])}",
            f"password_env = {_q(answers['password_env'])}",
            "",
        ]
    elif answers["backend"] == "gmail":
        lines += ["[gmail]", 'credentials_file = "credentials.json"', 'token_file = "token.json"', ""]
    else:
        lines += ["[local]", 'path = "mailbox"', ""]
    for name, email in answers["agents"]:
        lines += ["[[agents]]", f"name = {_q(name)}", f"email = {_q(email)}", ""]
    return "\n".join(lines)


def run_wizard(path: Path, force: bool, prompt: Callable, echo: Callable[[str], None]) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists (use --force to overwrite it)")
    echo("A few questions; Enter keeps the [default].")
    answers: dict = {}
    answers["backend"] = prompt("Mailbox: imap, gmail or local", default="imap")
    if answers["backend"] not in ("imap", "gmail", "local"):
        raise ConfigError("the mailbox must be imap, gmail or local")
    answers["name"] = prompt("Name of your helpdesk (signs the emails)", default="Support")
    answers["address"] = prompt("Support address (the shared mailbox)")
    answers["timezone"] = prompt("Time zone for business hours", default="UTC")
    if answers["backend"] == "imap":
        domain = answers["address"].rsplit("@", 1)[-1]
        answers["imap_host"] = prompt("IMAP server", default=f"imap.{domain}")
        answers["username"] = prompt("Login name", default=answers["address"])
        answers["password_env"] = prompt("Environment variable that holds the password", default="MAILHELPDESK_PASSWORD")
        answers["smtp_host"] = prompt("SMTP server", default=re.sub(r"^imap\.", "smtp.", answers["imap_host"]))
    answers["agents"] = parse_agents(prompt("Agents, as 'Name <email>, Name <email>'", default="", show_default=False))
    text = render_config(answers)
    from .config import config_from_dict
    import tomllib

    try:
        config_from_dict(tomllib.loads(text), path)
    except ConfigError as exc:
        if "password_env" not in str(exc):
            raise
    path.write_text(text, encoding="utf-8")
    echo(f"wrote {path}")
    if answers["backend"] == "imap":
        echo(f"next: export {answers['password_env']}=... ; mailhelpdesk check ; mailhelpdesk run")
    elif answers["backend"] == "gmail":
        echo("next: put your OAuth client file at credentials.json ; mailhelpdesk auth ; mailhelpdesk check ; mailhelpdesk run")
    else:
        echo("next: mailhelpdesk run --once")
