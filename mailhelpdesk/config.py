"""Typed configuration: one TOML file, loaded once into frozen dataclasses, with errors that name the key."""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailhelpdesk.errors import ConfigError
from mailhelpdesk.capabilities import BACKENDS, capabilities
from mailhelpdesk.model import Priority

DEFAULT_CONFIG = "mailhelpdesk.toml"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _secret() -> Any:
    return field(default="", repr=False)


@dataclass(frozen=True)
class HelpdeskConfig:
    address: str
    name: str = "Support"
    ticket_prefix: str = "HD"
    timezone: str = "UTC"
    state_file: str = "mailhelpdesk-state.json"
    label_root: str = "Helpdesk"
    templates_dir: str = ""
    language: Literal["en", "ru"] = "en"
    free_mail_domains: list[str] = field(default_factory=list)  # besides core/judge/senders.FREE_MAIL (gmail.com ...)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class MailboxConfig:
    backend: str = "imap"  # a name in mailbox.capabilities.BACKENDS
    poll_interval: int = 30
    stale_after: int = 900
    daily_send_limit: int = 2000  # the provider's sending limit; when not given, the backend's (capabilities.py)


@dataclass(frozen=True)
class LocalConfig:
    path: str = "mailbox"


@dataclass(frozen=True)
class ServerConfig:
    """What an IMAP and an SMTP server have in common: where, how securely, and the login."""

    DEFAULT_PORTS = {"ssl": 0, "starttls": 0, "none": 0}

    host: str = ""
    port: int = 0
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = ""
    password: str = _secret()
    password_env: str = ""
    password_file: str = ""
    timeout: int = 60

    @property
    def effective_port(self) -> int:
        return self.port or self.DEFAULT_PORTS[self.security]


@dataclass(frozen=True)
class ImapConfig(ServerConfig):
    DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}

    folder: str = "INBOX"
    sent_folder: str = ""
    import_days: int = 14
    save_sent: Literal["auto", "yes", "no"] = "auto"
    idle: bool = True


@dataclass(frozen=True)
class SmtpConfig(ServerConfig):
    DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True)
class GmailConfig:
    credentials_file: str = "credentials.json"
    token_file: str = "token.json"
    service_account_file: str = ""
    delegated_user: str = ""
    initial_query: str = "in:inbox newer_than:14d"
    api_endpoint: str = ""
    pubsub_topic: str = ""
    pubsub_subscription: str = ""
    pubsub_endpoint: str = "https://pubsub.googleapis.com/"


@dataclass(frozen=True)
class AgentConfig:
    name: str
    email: str
    hours: str = ""


@dataclass(frozen=True)
class AssignmentConfig:
    strategy: Literal["round_robin", "least_open", "manual"] = "round_robin"
    notify: bool = True  # when not given, the backend's (capabilities.py): off on Gmail


@dataclass(frozen=True)
class AutoreplyConfig:
    enabled: bool = True
    template: str = "acknowledgement"
    max_age_hours: int = 24
    # Loops are stopped by what they are (core/judge/loops.py); these ceilings are the last line of defence, set where
    # no person reaches them: each new request of a person is acknowledged, whoever else wrote today.
    max_per_sender: int = 10  # acknowledgements to one address (without case or +tag) ...
    per_sender_hours: int = 1  # ... per this many hours
    max_per_domain: int = 30  # ... and to one company domain (not free mail) in the same hours
    max_per_hour: int = 300  # acknowledgements in all, per hour: a flood beyond it gets none, and `status` warns
    same_shape_hours: int = 24  # the same mail again from one sender or company within this many hours: a robot


@dataclass(frozen=True)
class NoticesConfig:
    """Notices to agents and leads (new assignments, warnings, breaches, escalations): batched, never a flood."""

    batch_minutes: int = 10  # at most one notice mail per address in this many minutes; what comes in between is
    # carried into the next one, which lists every ticket (so at most 60 / batch_minutes an hour)


@dataclass(frozen=True)
class CommandsConfig:
    """Commands by mail (`#close`, `#assign bob` ...): whose word proves that an agent sent them."""

    trusted_authserv_id: str = ""  # the receiving server's name in Authentication-Results, e.g. "mx.google.com"
    require_authentication: bool = True  # false: trust an agent's From: address when no trusted A-R vouches


@dataclass(frozen=True)
class PriorityRule:
    priority: Priority
    subject: str = ""
    body: str = ""
    sender_domains: list[str] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)


DEFAULT_PRIORITY_RULES = (
    PriorityRule(
        Priority.URGENT,
        subject=r"(?i)\b(urgent|emergency|outage|asap|critical)\b|\b(is|are|went|goes) down\b|срочно|не работает",
    ),
)


@dataclass(frozen=True)
class PriorityConfig:
    default: Priority = Priority.NORMAL
    use_headers: bool = True
    rules: list[PriorityRule] | None = None

    @property
    def effective_rules(self) -> tuple[PriorityRule, ...]:
        return DEFAULT_PRIORITY_RULES if self.rules is None else tuple(self.rules)


@dataclass(frozen=True)
class SlaConfig:
    business_hours: str = "Mon-Fri 09:00-18:00"
    holidays_country: str = ""
    holidays_subdivision: str = ""
    holidays_extra: list[str] = field(default_factory=list)
    first_response: dict[str, str] = field(
        default_factory=lambda: {"urgent": "1h", "high": "4h", "normal": "1d", "low": "2d"}
    )
    warn_at: float = 0.75
    escalate_to: list[str] = field(default_factory=list)
    escalate_after: str = "4h"


@dataclass(frozen=True)
class ResolutionConfig:
    notify: bool = True
    template: str = "resolution"
    close_after: str = "3d"
    ask_rating: bool = True


@dataclass(frozen=True)
class PendingConfig:
    """Tickets waiting for the customer: remind a customer who went quiet once, then resolve. Off when empty."""

    remind_after: str = ""  # e.g. "3d": working days pending before one reminder to the customer
    resolve_after: str = ""  # e.g. "7d": working days after the reminder before the ticket is resolved


@dataclass(frozen=True)
class DigestConfig:
    enabled: bool = True
    schedule: str = "0 9 * * 1-5"


@dataclass(frozen=True)
class Config:
    helpdesk: HelpdeskConfig
    mailbox: MailboxConfig = field(default_factory=MailboxConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    gmail: GmailConfig = field(default_factory=GmailConfig)
    agents: list[AgentConfig] = field(default_factory=list)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    autoreply: AutoreplyConfig = field(default_factory=AutoreplyConfig)
    notices: NoticesConfig = field(default_factory=NoticesConfig)
    priority: PriorityConfig = field(default_factory=PriorityConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    resolution: ResolutionConfig = field(default_factory=ResolutionConfig)
    pending: PendingConfig = field(default_factory=PendingConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    path: Path = Path(DEFAULT_CONFIG)

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    @property
    def support_address(self) -> str:
        return self.helpdesk.address.lower()

    def agent_by_email(self, address: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.email.lower() == address.lower()), None)

    def agent_by_name(self, name: str) -> AgentConfig | None:
        wanted = name.strip().lower()
        return next((a for a in self.agents if wanted in (a.name.lower(), a.email.lower())), None)

    def first_response_target(self, priority: Priority):  # -> sla.Target
        """Days are working days (`1d`: the same time on the next working day), hours are business hours."""
        from mailhelpdesk.core.sla import parse_target

        return parse_target(self.sla.first_response.get(priority.value) or SlaConfig().first_response[priority.value])


# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str] | None = None, secrets: bool = True) -> Config:
    """Read and validate the config file; every problem is a ConfigError naming file and key.

    With secrets=False the passwords are not looked up (their variables and files need not exist): for the
    commands that only read the state (`tickets`, `status`, `report`, `digest --print`).
    A relative `[helpdesk] state_file` goes into `$STATE_DIRECTORY` when it is set (systemd's StateDirectory=),
    else next to the config file.
    """
    path = Path(path or os.environ.get("MAILHELPDESK_CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (run `mailhelpdesk init` to write one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = config_from_dict(data, path, secrets=secrets)
    state_directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory and not Path(config.helpdesk.state_file).expanduser().is_absolute():
        import dataclasses

        state_file = str(Path(state_directory) / config.helpdesk.state_file)
        config = dataclasses.replace(config, helpdesk=dataclasses.replace(config.helpdesk, state_file=state_file))
    return config


def config_from_dict(data: dict[str, Any], path: Path = Path(DEFAULT_CONFIG), secrets: bool = True) -> Config:
    if "helpdesk" not in data:
        raise ConfigError(f"{path}: missing section [helpdesk] (it needs at least `address`)")
    data = dict(data, path=path)
    config = _build(Config, data, "", path)
    config = _backend_defaults(config, data, path)
    config = _resolve_secrets(config, path, read=secrets)
    _check(config, path)
    return config


def _backend_defaults(config: Config, data: dict[str, Any], path: Path) -> Config:
    """The backend known, and what it implies where the file says nothing ([mailbox] daily_send_limit,
    [assignment] notify)."""
    import dataclasses

    backend = config.mailbox.backend
    if backend not in BACKENDS:
        raise ConfigError(f"{path}: mailbox.backend must be one of {', '.join(map(repr, BACKENDS))}, got {_show(backend)}")
    implied = capabilities(config)
    if "daily_send_limit" not in data.get("mailbox", {}):
        config = dataclasses.replace(config, mailbox=dataclasses.replace(config.mailbox, daily_send_limit=implied.daily_send_limit))
    if "notify" not in data.get("assignment", {}):
        config = dataclasses.replace(config, assignment=dataclasses.replace(config.assignment, notify=implied.notices_to_agents))
    return config


def _build(cls: type, data: Any, where: str, path: Path) -> Any:
    hints = typing.get_type_hints(cls)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where or 'top level'} must be a table, got {_show(data)}")
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            hint = ", ".join(sorted(k for k in known if k != "path"))
            raise ConfigError(f"{path}: unknown key {_name(where, key)!r} (known keys here: {hint})")
    values = {}
    for f in fields(cls):
        name = _name(where, f.name)
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], name, path)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{path}: missing required key {name!r}")
    return cls(**values)


def _convert(hint: Any, value: Any, name: str, path: Path) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Path:
        return value
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, name, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {name} must be one of {', '.join(map(repr, args))}, got {_show(value)}")
        return value
    if isinstance(hint, type) and issubclass(hint, Priority):
        try:
            return Priority(str(value).lower())
        except ValueError:
            choices = ", ".join(repr(p.value) for p in Priority)
            raise ConfigError(f"{path}: {name} must be one of {choices}, got {_show(value)}") from None
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: {name} must be a list, got {_show(value)}")
        return [_convert(args[0], v, f"{name}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {name} must be a table, got {_show(value)}")
        return {k: _convert(args[1], v, f"{name}.{k}", path) for k, v in value.items()}
    if is_dataclass(hint):
        return _build(hint, value, name, path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool) and (type(value) is not hint):
        kind = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[hint]
        raise ConfigError(f"{path}: {name} must be {kind}, got {_show(value)}")
    return value


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _resolve_secrets(config: Config, path: Path, read: bool = True) -> Config:
    """Fill in the passwords from their variables or files; with read=False only check how they are given."""
    import dataclasses

    changes = {}
    for section in ("imap", "smtp"):
        sub = getattr(config, section)
        given = [k for k in ("password", "password_env", "password_file") if getattr(sub, k)]
        if len(given) > 1:
            raise ConfigError(f"{path}: [{section}] give only one of password, password_env, password_file")
        if not read:
            continue
        if sub.password_env:
            secret = os.environ.get(sub.password_env)
            if secret is None:
                raise ConfigError(
                    f"{path}: [{section}] password_env names ${sub.password_env}, which is not set in the environment"
                )
            changes[section] = dataclasses.replace(sub, password=secret)
        elif sub.password_file:
            file = config.resolve(sub.password_file)
            try:
                secret = file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{path}: [{section}] password_file {file}: {exc.strerror or exc}") from None
            changes[section] = dataclasses.replace(sub, password=secret)
    return dataclasses.replace(config, **changes) if changes else config


def _check(config: Config, path: Path) -> None:
    """Rules that types alone cannot express."""
    h = config.helpdesk
    if not EMAIL.match(h.address):
        raise ConfigError(f"{path}: [helpdesk] address must be an email address, got {h.address!r}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,9}", h.ticket_prefix):
        raise ConfigError(f"{path}: [helpdesk] ticket_prefix must be 1-10 letters or digits, starting with a letter")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*", h.label_root):
        raise ConfigError(f"{path}: [helpdesk] label_root must be a label name like 'Helpdesk' (letters, digits, / to nest)")
    try:
        ZoneInfo(h.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: [helpdesk] timezone {h.timezone!r} is not a known IANA time zone (e.g. 'Europe/Berlin')") from None
    backend = capabilities(config)
    for required in backend.required:
        section, key = required.split(".")
        if not getattr(getattr(config, section), key):
            why = " (mail goes out by SMTP)" if section == "smtp" else ""
            raise ConfigError(f"{path}: [{section}] {key} is required when [mailbox] backend = \"{backend.name}\"{why}")
    names, emails = set(), set()
    for i, agent in enumerate(config.agents):
        if not EMAIL.match(agent.email):
            raise ConfigError(f"{path}: [[agents]] #{i + 1} email must be an email address, got {agent.email!r}")
        if agent.name.lower() in names or agent.email.lower() in emails:
            raise ConfigError(f"{path}: [[agents]] #{i + 1} {agent.name!r} appears twice")
        names.add(agent.name.lower())
        emails.add(agent.email.lower())
    for i, rule in enumerate(config.priority.effective_rules):
        for key in ("subject", "body"):
            try:
                re.compile(getattr(rule, key))
            except re.error as exc:
                raise ConfigError(f"{path}: [[priority.rules]] #{i + 1} {key} is not a valid regular expression: {exc}") from None
    from mailhelpdesk.core.sla import BusinessCalendar, parse_duration, parse_target

    for key, value in (("remind_after", config.pending.remind_after), ("resolve_after", config.pending.resolve_after)):
        try:
            if value:
                parse_target(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: [pending] {key}: {exc}") from None
    if config.pending.resolve_after and not config.pending.remind_after:
        raise ConfigError(f"{path}: [pending] resolve_after counts from the reminder: set remind_after too")
    for key, value in [*config.sla.first_response.items(), ("escalate_after", config.sla.escalate_after)]:
        if key != "escalate_after" and key not in {p.value for p in Priority}:
            raise ConfigError(f"{path}: [sla] first_response has unknown priority {key!r}")
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: [sla] {key}: {exc}") from None
    g = config.gmail
    if bool(g.pubsub_topic) != bool(g.pubsub_subscription):
        raise ConfigError(f"{path}: [gmail] pubsub_topic and pubsub_subscription go together (push needs both)")
    for key, pattern in (("pubsub_topic", r"projects/[^/]+/topics/[^/]+"), ("pubsub_subscription", r"projects/[^/]+/subscriptions/[^/]+")):
        value = getattr(g, key)
        if value and not re.fullmatch(pattern, value):
            raise ConfigError(f"{path}: [gmail] {key} must look like {pattern.replace('[^/]+', 'NAME')}, got {value!r}")
    for i, lead in enumerate(config.sla.escalate_to):
        if not EMAIL.match(lead):
            raise ConfigError(f"{path}: [sla] escalate_to[{i}] must be an email address, got {lead!r}")
    authserv_id = config.commands.trusted_authserv_id
    if authserv_id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", authserv_id):
        raise ConfigError(f"{path}: [commands] trusted_authserv_id must be a host name such as \"mx.google.com\" "
                          f"(the first word of the receiving server's Authentication-Results), got {authserv_id!r}")
    try:
        parse_duration(config.resolution.close_after)
    except ValueError as exc:
        raise ConfigError(f"{path}: [resolution] close_after: {exc}") from None
    try:
        from mailhelpdesk.core.duties.digests import cron_trigger

        cron_trigger(config.digest.schedule, h.timezone)
    except ValueError as exc:
        raise ConfigError(f"{path}: [digest] schedule {config.digest.schedule!r} is not a cron expression "
                          f"(minute hour day month weekday, e.g. \"0 9 * * 1-5\"): {exc}") from None
    for section, key in (("autoreply", "max_per_sender"), ("autoreply", "per_sender_hours"),
                         ("autoreply", "max_per_domain"), ("autoreply", "max_per_hour"),
                         ("autoreply", "same_shape_hours"), ("notices", "batch_minutes")):
        if getattr(getattr(config, section), key) < 0:
            raise ConfigError(f"{path}: [{section}] {key} must be 0 or more, got {getattr(getattr(config, section), key)}")
    if not 0 < config.sla.warn_at < 1:
        raise ConfigError(f"{path}: [sla] warn_at must be between 0 and 1, got {config.sla.warn_at}")
    try:
        BusinessCalendar.from_settings(
            h.timezone,
            config.sla.business_hours,
            config.sla.holidays_country or None,
            config.sla.holidays_subdivision or None,
            config.sla.holidays_extra,
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: [sla] {exc}") from None


def calendar(config: Config):  # -> BusinessCalendar
    """The business calendar of this helpdesk (built from [sla] and the time zone)."""
    from mailhelpdesk.core.sla import BusinessCalendar

    s = config.sla
    return BusinessCalendar.from_settings(
        config.helpdesk.timezone,
        s.business_hours,
        s.holidays_country or None,
        s.holidays_subdivision or None,
        s.holidays_extra,
    )
