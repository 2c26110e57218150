"""`mailhelpdesk init`: a few questions, each checked as it is answered, then one valid config file.

The password is never asked for and never written: the config names where it will come from (an
environment variable or a file) and the wizard says what to set before `mailhelpdesk check`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass
from email.utils import getaddresses
from importlib import resources
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import click

from mailhelpdesk.config import EMAIL, ImapConfig, SmtpConfig
from mailhelpdesk.errors import ConfigError
from mailhelpdesk.capabilities import Login, capabilities

EXAMPLE_NAME = "config.example.toml"
SECURITY = ("ssl", "starttls", "none")
IMAP_PORTS = ImapConfig.DEFAULT_PORTS  # ssl 993, starttls/none 143
SMTP_PORTS = SmtpConfig.DEFAULT_PORTS  # ssl 465, starttls 587, none 25
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def example_config() -> str:
    """The fully documented example config that ships inside the package."""
    return resources.files("mailhelpdesk").joinpath(EXAMPLE_NAME).read_text(encoding="utf-8")


# --- providers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """Server settings a provider documents for mail clients, and what a founder must do first."""

    name: str
    imap_host: str
    smtp_host: str
    imap_security: str = "ssl"
    smtp_security: str = "ssl"
    hint: str = ""


PROVIDER_NAMES = ("gmail", "outlook", "fastmail", "yandex", "zoho", "other", "local")


def provider_settings(name: str, domain: str) -> Provider:
    """Defaults for a provider; `domain` is the support address's domain (for "other" and Zoho's regions)."""
    if name == "gmail":
        return Provider("gmail", "imap.gmail.com", "smtp.gmail.com",
                        hint="Gmail over IMAP needs an app password (2-Step Verification on): "
                             "https://myaccount.google.com/apppasswords")
    if name == "outlook":
        return Provider("outlook", "outlook.office365.com", "smtp-mail.outlook.com", smtp_security="starttls",
                        hint="Outlook.com: turn on IMAP (Settings > Mail > Forwarding and IMAP). Microsoft is "
                             "retiring password logins for Outlook.com in favour of OAuth2, which mailhelpdesk "
                             "does not speak over IMAP: if `check` reports a failed login, that is the reason.")
    if name == "fastmail":
        return Provider("fastmail", "imap.fastmail.com", "smtp.fastmail.com",
                        hint="Fastmail needs an app password (Settings > Privacy & Security > "
                             "Manage app passwords); the normal password does not work over IMAP.")
    if name == "yandex":
        return Provider("yandex", "imap.yandex.com", "smtp.yandex.com",
                        hint="Yandex: allow IMAP (Mail settings > Email clients) and use an app password "
                             "(Yandex ID > Security > App passwords).")
    if name == "zoho":
        # personal addresses (name@zoho.com, @zohomail.eu ...) use imap.zoho.<region>; own domains imappro.
        first, _, rest = domain.partition(".")
        if first in ("zoho", "zohomail") and rest:
            return Provider("zoho", f"imap.zoho.{rest}", f"smtp.zoho.{rest}", hint=_ZOHO_HINT)
        return Provider("zoho", "imappro.zoho.com", "smtppro.zoho.com", hint=_ZOHO_HINT)
    return Provider(name, f"imap.{domain}", f"smtp.{domain}")


_ZOHO_HINT = ("Zoho: turn on IMAP access (Settings > Mail Accounts > IMAP); with two-factor authentication use an "
              "application-specific password. Accounts in the EU, India or Australia data centres use "
              "the .eu, .in or .com.au server names.")


def guess_provider(address: str) -> str:
    """The provider of a support address, from its domain; "other" when the domain does not say."""
    domain = address.rsplit("@", 1)[-1].lower()
    first = domain.split(".", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        return "gmail"
    if first in ("outlook", "hotmail", "live", "msn"):
        return "outlook"
    if domain in ("fastmail.com", "fastmail.fm"):
        return "fastmail"
    if first == "yandex" or domain == "ya.ru":
        return "yandex"
    if first in ("zoho", "zohomail"):
        return "zoho"
    return "other"


# --- answers, checked one at a time (click asks again while these raise BadParameter) ---------


def email_address(value: str) -> str:
    value = value.strip()
    if not EMAIL.match(value):
        raise click.BadParameter(f"{value!r} is not an email address (like support@example.com)")
    return value


def host_name(value: str) -> str:
    value = value.strip()
    if ":" in value and not _is_ip(value):
        raise click.BadParameter(f"{value!r}: give the server name alone (like imap.example.com); the port comes next")
    if _is_ip(value) or value.lower() == "localhost":
        return value
    if not HOSTNAME.fullmatch(value) or "." not in value.rstrip("."):
        raise click.BadParameter(f"{value!r} is not a full server name (like imap.example.com)")
    return value.rstrip(".")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def helpdesk_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise click.BadParameter("the helpdesk needs a name (it signs the emails)")
    return value


def login_name(value: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise click.BadParameter(f"{value!r} is not a login name (usually the mailbox's email address)")
    return value


def env_name(value: str) -> str:
    value = value.strip()
    if not ENV_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not an environment variable name (letters, digits, _)")
    return value


def file_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise click.BadParameter("give a file name")
    return value


def timezone_name(value: str, zones: frozenset[str] | None = None) -> str:
    """An IANA zone name (`Europe/Berlin`); a city alone or a typo gets a suggestion."""
    value = value.strip()
    zones = _zones() if zones is None else zones
    if value in zones:
        return value
    by_lower = {z.lower(): z for z in zones}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    if not zones and _zoneinfo_knows(value):  # no zone list on this system: trust zoneinfo
        return value
    city = value.replace(" ", "_").lower()
    suggestions = sorted(z for z in zones if z.rsplit("/", 1)[-1].lower() == city)
    suggestions += [by_lower[m] for m in difflib.get_close_matches(value.lower(), by_lower, n=3, cutoff=0.8)
                    if by_lower[m] not in suggestions]
    hint = (f"; did you mean {' or '.join(suggestions[:3])}?" if suggestions
            else " (like Europe/Berlin or America/New_York)")
    raise click.BadParameter(f"{value!r} is not an IANA time zone{hint}")


def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zoneinfo_knows(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_timezone(zones: frozenset[str] | None = None) -> str:
    """This machine's IANA zone ($TZ or the /etc/localtime link) as the default answer; else UTC."""
    zones = _zones() if zones is None else zones
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    except OSError:
        pass
    return next((c for c in candidates if c and c in zones), "UTC")


def parse_agents(text: str, support_address: str = "") -> list[tuple[str, str]]:
    """`Alice Smith <alice@x.com>, bob@x.com` -> [("Alice Smith", "alice@x.com"), ("Bob", "bob@x.com")]."""
    agents: list[tuple[str, str]] = []
    if not text.strip():
        return agents
    parts = [p.strip() for p in text.split(",")]
    for name, email in getaddresses([text]):
        shown = next((p for p in parts if email and email in p), email or name)
        if not EMAIL.match(email or ""):
            raise click.BadParameter(f"{shown or text!r}: write each agent as 'Name <email>' or just the email, "
                                     "separated by commas")
        if email.lower() == support_address.lower():
            raise click.BadParameter(f"{email} is the support address itself; list the people who answer")
        name = name.strip() or re.sub(r"[._-]+", " ", email.split("@")[0]).title()
        if any(email.lower() == e.lower() for _, e in agents):
            raise click.BadParameter(f"{email} is listed twice")
        if any(name.lower() == n.lower() for n, _ in agents):
            raise click.BadParameter(f"two agents are called {name!r}; give one another name ('Name <email>')")
        agents.append((name, email))
    return agents


# --- the file --------------------------------------------------------------------------------


def _q(value: str | int | list[str]) -> str:
    """A TOML value (JSON's string and list syntax is valid TOML for what we write)."""
    return str(value) if isinstance(value, int) else json.dumps(value, ensure_ascii=False)


def _line(key: str, value: str | int | list[str], comment: str = "", width: int = 39) -> str:
    text = f"{key} = {_q(value)}"
    return f"{text:<{width}} # {comment}" if comment else text


def _server_section(section: str, a: dict) -> list[str]:
    what = {"imap": "where customers' mail is read", "smtp": "where our mail is sent"}[section]
    ports = {"imap": IMAP_PORTS, "smtp": SMTP_PORTS}[section]
    secret_key = "password_env" if a["secret"] == "env" else "password_file"
    secret_comment = ("the environment variable that holds the password" if a["secret"] == "env"
                      else "the file that holds the password")
    lines = [
        f"[{section}]",
        _line("host", a[f"{section}_host"], what),
        _line("port", a[f"{section}_port"], "usually {ssl} with ssl, {starttls} with starttls".format(**ports)),
        _line("security", a[f"{section}_security"], '"ssl", "starttls" or "none" (no encryption)'),
    ]
    login = [_line("username", a["username"], "the login name"), _line(secret_key, a["secret_value"], secret_comment)]
    if section == "smtp" and a["smtp_security"] == "none":  # a relay without encryption takes mail without a login
        return lines + ["# a relay that asks for a login: uncomment these", *("# " + line for line in login)]
    return lines + login


def _gmail_section(a: dict) -> list[str]:
    return [
        "[gmail]",
        _line("credentials_file", "credentials.json", "the OAuth client (Desktop app) from Google Cloud"),
        _line("token_file", "token.json", "written by `mailhelpdesk auth` (mode 0600)"),
    ]


def _local_section(a: dict) -> list[str]:
    return ["[local]", _line("path", "mailbox", "a folder with INBOX/ and Sent/ of .eml files")]


SECTIONS: dict[str, Callable[[dict], list[str]]] = {
    "imap": lambda a: _server_section("imap", a),
    "smtp": lambda a: _server_section("smtp", a),
    "gmail": _gmail_section,
    "local": _local_section,
}  # what the wizard writes of each section a backend reads (capabilities.py: sections)


def render_config(a: dict) -> str:
    """The config file for these answers, with a comment on each line."""
    backend = capabilities(a["backend"])
    lines = [
        "# mailhelpdesk config, written by `mailhelpdesk init`.",
        "# Every other key and its default: `mailhelpdesk init --example` prints the fully documented example.",
        "# Paths are relative to this file's folder. Check it with `mailhelpdesk check`.",
        "",
        "[helpdesk]",
        _line("name", a["name"], "signs the emails we send"),
        _line("address", a["address"], "the shared mailbox customers write to"),
        _line("timezone", a["timezone"], "IANA zone of business hours and of the dates we write"),
        _line("state_file", "mailhelpdesk-state.json", "the small JSON store (`rebuild` recovers it)"),
        "",
        "[mailbox]",
        _line("backend", backend.name, backend.summary),
        "",
    ]
    for section in backend.sections:
        lines += SECTIONS[section](a) + [""]
    lines += [
        "[sla]",
        _line("business_hours", "Mon-Fri 09:00-18:00", "when the response-time clock runs"),
        "# " + _line("holidays_country", "DE", "public holidays stop the clock too", width=37),
        "# " + _line("escalate_to", ["lead@example.com"], "who hears about overdue tickets", width=37),
        "",
        "# The people who answer. Mail from these addresses (or sent from the support address) is an agent's reply.",
    ]
    for name, email in a["agents"]:
        lines += ["[[agents]]", _line("name", name), _line("email", email), ""]
    if not a["agents"]:
        lines += ["# [[agents]]", '# name = "Alice"', '# email = "alice@example.com"', ""]
    return "\n".join(lines)


def validate_text(text: str, path: Path) -> None:
    """Load the written text as `load_config` would, except for the password (not set yet, by design)."""
    from mailhelpdesk.config import config_from_dict

    data = tomllib.loads(text)
    for section in ("imap", "smtp"):
        for key in ("password", "password_env", "password_file"):
            data.get(section, {}).pop(key, None)
    config_from_dict(data, path)


# --- the questions ---------------------------------------------------------------------------


def run_wizard(path: Path, force: bool, prompt: Callable, echo: Callable[[str], None]) -> None:
    """Ask, check each answer at once, write `path`. `prompt` is click.prompt (tests drive it with input)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists (use --force to overwrite it)")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist")
    echo("A few questions; Enter keeps the [default]. The password is not asked for.")
    a: dict = {}
    a["address"] = prompt("Support address (the shared mailbox customers write to)", value_proc=email_address)
    a["name"] = prompt("Name of your helpdesk (signs the emails)", default="Support", value_proc=helpdesk_name)
    domain = a["address"].rsplit("@", 1)[1].lower()
    provider_name = prompt("Mail provider ('other': any IMAP server; 'local': a folder, to try it out)",
                           default=guess_provider(a["address"]),
                           type=click.Choice(PROVIDER_NAMES, case_sensitive=False))
    a["backend"] = "local" if provider_name == "local" else "imap"
    if provider_name == "gmail":
        via = prompt("Connect through the Gmail API (recommended) or IMAP", default="api",
                     type=click.Choice(["api", "imap"], case_sensitive=False))
        a["backend"] = "gmail" if via == "api" else "imap"
    provider = provider_settings(provider_name, domain)
    if capabilities(a["backend"]).login is Login.PASSWORD:
        _ask_servers(a, provider, prompt, echo)
    a["timezone"] = prompt("Time zone of your business hours (IANA, like Europe/Berlin)",
                           default=local_timezone(), value_proc=timezone_name)
    a["agents"] = prompt("Agents, as 'Name <email>, Name <email>' (Enter: none yet)", default="",
                         show_default=False, value_proc=lambda text: parse_agents(text, a["address"]))
    text = render_config(a)
    validate_text(text, path)
    path.write_text(text, encoding="utf-8")
    echo(f"wrote {path}")
    for line in next_steps(a, provider, os.environ):
        echo(line)


def _ask_servers(a: dict, provider: Provider, prompt: Callable, echo: Callable[[str], None]) -> None:
    choice = click.Choice(SECURITY, case_sensitive=False)
    for section, host, security, ports in (
        ("imap", provider.imap_host, provider.imap_security, IMAP_PORTS),
        ("smtp", provider.smtp_host, provider.smtp_security, SMTP_PORTS),
    ):
        label = section.upper()
        a[f"{section}_host"] = prompt(f"{label} server", default=host, value_proc=host_name)
        a[f"{section}_security"] = prompt(f"{label} security: ssl, starttls or none (no encryption)",
                                          default=security, type=choice, show_choices=False)
        a[f"{section}_port"] = prompt(f"{label} port", default=ports[a[f"{section}_security"]],
                                      type=click.IntRange(1, 65535))
        if a[f"{section}_security"] == "none" and a[f"{section}_host"] not in ("127.0.0.1", "localhost", "::1"):
            echo(f"warning: with security none the password goes to {a[f'{section}_host']} unencrypted")
    a["username"] = prompt("Login name", default=a["address"], value_proc=login_name)
    a["secret"] = prompt("The password will be in an environment variable (env) or a file (file)",
                         default="env", type=click.Choice(["env", "file"], case_sensitive=False), show_choices=False)
    if a["secret"] == "env":
        a["secret_value"] = prompt("Name of that environment variable", default="MAILHELPDESK_PASSWORD",
                                   value_proc=env_name)
    else:
        a["secret_value"] = prompt("That file (relative to the config's folder)", default="mailhelpdesk.password",
                                   value_proc=file_name)


def next_steps(a: dict, provider: Provider, environ) -> list[str]:
    """What to do after the file is written; the password is set here, never in the config."""
    login = capabilities(a["backend"]).login
    if login is Login.OAUTH:
        return ["next: in Google Cloud Console enable the Gmail API, create an OAuth client (Desktop app) and save",
                "      it as credentials.json next to the config;",
                "then: mailhelpdesk auth ; mailhelpdesk check ; mailhelpdesk run"]
    if login is Login.NONE:
        return ["next: mailhelpdesk run --once"]
    steps = []
    if a["secret"] == "env":
        variable = a["secret_value"]
        if environ.get(variable):
            steps.append(f"${variable} is set in this shell: it must hold the mailbox password")
        else:
            steps.append(f"next: export {variable}='the mailbox password'   (the config only names the variable)")
    else:
        steps.append(f"next: put the mailbox password in {a['secret_value']} (one line; chmod 600 it)")
    if provider.hint:
        steps.append(f"note: {provider.hint}")
    steps.append("then: mailhelpdesk check ; mailhelpdesk run --dry-run ; mailhelpdesk run")
    return steps
