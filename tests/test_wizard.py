"""`mailhelpdesk init` through the real CLI (click's CliRunner): every answer is checked at once and asked again
when bad; the password is never asked for; the file loads with load_config; the documented example ships."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailhelpdesk.app.cli import main
from mailhelpdesk.config import load_config
from mailhelpdesk.errors import ConfigError
from mailhelpdesk.app.wizard import example_config, guess_provider, parse_agents, timezone_name

ROOT = Path(__file__).parent.parent
PACKAGED_EXAMPLE = ROOT / "mailhelpdesk" / "config.example.toml"
NO_PASSWORD = {"MAILHELPDESK_PASSWORD": None, "TZ": "UTC"}  # the README's order: init before the password is set


def init(path: Path, answers: list[str], *args: str, env=None):
    text = "\n".join(answers) + "\n"
    return CliRunner().invoke(main, ["init", "--config", str(path), *args], input=text,
                              env={**NO_PASSWORD, **(env or {})}, catch_exceptions=False)


def test_bad_answers_are_asked_again_and_the_config_loads(tmp_path, monkeypatch):
    path = tmp_path / "mailhelpdesk.toml"
    answers = [
        "support", "help@acme.example",                 # address: not an address, then one
        "   ", "Acme Support",                          # name: blank, then one
        "exchange", "other",                            # provider
        "imap.acme.example:993", "mail.acme.example",   # IMAP host: with a port, then right
        "tls", "starttls",                              # IMAP security
        "0", "abc", "143",                              # IMAP port
        "smtp acme", "mail.acme.example",               # SMTP host
        "", "",                                         # SMTP security ssl, port 465 (defaults)
        "", "",                                         # login = the address; password from env
        "1PASS", "ACME_MAIL_PASSWORD",                  # the variable's name
        "Berlin", "Europe/Berlin",                      # time zone
        "Alice <alice@acme>", "help@acme.example",
        "Alice Smith <alice@acme.example>, bob.jones@acme.example",
    ]
    result = init(path, answers)
    assert result.exit_code == 0, result.output
    out = result.output
    for message in ("'support' is not an email address", "the helpdesk needs a name", "'exchange' is not one of",
                    "give the server name alone", "'tls' is not one of", "0 is not in the range",
                    "'abc' is not a valid integer", "'smtp acme' is not a full server name",
                    "'1PASS' is not an environment variable name",
                    "'Berlin' is not an IANA time zone; did you mean Europe/Berlin?",
                    "'Alice <alice@acme>': write each agent as 'Name <email>'",
                    "help@acme.example is the support address itself"):
        assert message in out, message
    assert not [line for line in out.splitlines() if re.match(r"(imap |smtp |mailbox )?password", line, re.I)]
    assert "export ACME_MAIL_PASSWORD=" in out  # says what to set, since it is not set yet

    text = path.read_text()
    assert "mailhelpdesk init --example" in text and "config.example.toml" not in text
    assert "password =" not in text
    with pytest.raises(ConfigError, match=r"ACME_MAIL_PASSWORD, which is not set"):
        load_config(path)  # the config names the variable; the user sets it next
    monkeypatch.setenv("ACME_MAIL_PASSWORD", "pw-from-env")
    config = load_config(path)
    assert config.helpdesk.address == "help@acme.example" and config.helpdesk.name == "Acme Support"
    assert config.helpdesk.timezone == "Europe/Berlin" and config.mailbox.backend == "imap"
    assert (config.imap.host, config.imap.port, config.imap.security) == ("mail.acme.example", 143, "starttls")
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == ("mail.acme.example", 465, "ssl")
    assert config.imap.username == config.smtp.username == "help@acme.example"
    assert config.imap.password == config.smtp.password == "pw-from-env"
    assert [(a.name, a.email) for a in config.agents] == [("Alice Smith", "alice@acme.example"),
                                                          ("Bob Jones", "bob.jones@acme.example")]


@pytest.mark.parametrize(
    "address, provider, imap, smtp",
    [
        ("help@gmail.com", "gmail", ("imap.gmail.com", 993, "ssl"), ("smtp.gmail.com", 465, "ssl")),
        ("help@outlook.com", "outlook", ("outlook.office365.com", 993, "ssl"),
         ("smtp-mail.outlook.com", 587, "starttls")),
        ("help@fastmail.com", "fastmail", ("imap.fastmail.com", 993, "ssl"), ("smtp.fastmail.com", 465, "ssl")),
        ("help@yandex.ru", "yandex", ("imap.yandex.com", 993, "ssl"), ("smtp.yandex.com", 465, "ssl")),
        ("help@zohomail.eu", "zoho", ("imap.zoho.eu", 993, "ssl"), ("smtp.zoho.eu", 465, "ssl")),
        ("help@shop.example", "zoho", ("imappro.zoho.com", 993, "ssl"), ("smtppro.zoho.com", 465, "ssl")),
        ("help@shop.example", "other", ("imap.shop.example", 993, "ssl"), ("smtp.shop.example", 465, "ssl")),
    ],
)
def test_provider_defaults(tmp_path, monkeypatch, address, provider, imap, smtp):
    path = tmp_path / "c.toml"
    guessed = guess_provider(address) == provider
    answers = [address, "", "" if guessed else provider]
    answers += ["imap"] if provider == "gmail" else []  # Gmail: IMAP instead of the API
    answers += [""] * 9 + ["Europe/Paris", ""]  # Enter for host/security/port x2, login, env, variable; no agents
    result = init(path, answers)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "x")
    config = load_config(path)
    assert (config.imap.host, config.imap.port, config.imap.security) == imap
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == smtp
    assert config.imap.password_env == "MAILHELPDESK_PASSWORD" and config.agents == []
    if provider != "other":
        assert "note: " in result.output  # app passwords, IMAP switched on...


def test_changing_the_security_changes_the_default_port(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    answers = ["help@fastmail.com", "", "", "", "starttls", "", "", "starttls", "", "", "", "", "UTC", ""]
    result = init(path, answers)
    assert result.exit_code == 0, result.output
    assert "IMAP port [143]" in result.output and "SMTP port [587]" in result.output
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "x")
    config = load_config(path)
    assert (config.imap.port, config.smtp.port) == (143, 587)


def test_gmail_api_and_local_need_no_password(tmp_path):
    gmail = tmp_path / "gmail.toml"
    result = init(gmail, ["team@gmail.com", "Team", "", "", "America/New_York", "ann@team.example"])
    assert result.exit_code == 0, result.output
    config = load_config(gmail)
    assert config.mailbox.backend == "gmail" and config.gmail.credentials_file == "credentials.json"
    assert "mailhelpdesk auth" in result.output
    local = tmp_path / "local.toml"
    result = init(local, ["help@shop.example", "", "local", "UTC", ""])
    assert result.exit_code == 0, result.output
    assert load_config(local).mailbox.backend == "local"


def test_password_file_is_named_not_written(tmp_path):
    path = tmp_path / "c.toml"
    answers = ["help@shop.example", "", "", "", "", "", "", "", "", "", "file", "secret/imap.txt", "utc", ""]
    result = init(path, answers)
    assert result.exit_code == 0, result.output
    assert "put the mailbox password in secret/imap.txt" in result.output
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "imap.txt").write_text("file-pw\n")
    config = load_config(path)
    assert config.helpdesk.timezone == "UTC"  # "utc" is taken in its canonical spelling
    assert config.imap.password_file == config.smtp.password_file == "secret/imap.txt"
    assert config.imap.password == "file-pw"


def test_a_password_already_in_the_environment_is_mentioned_not_written(tmp_path):
    path = tmp_path / "c.toml"
    answers = ["help@shop.example", "", "", "", "", "", "", "", "", "", "", "", "UTC", ""]
    result = init(path, answers, env={"MAILHELPDESK_PASSWORD": "already-set-pw"})
    assert result.exit_code == 0, result.output
    assert "$MAILHELPDESK_PASSWORD is set in this shell" in result.output
    assert "already-set-pw" not in path.read_text() + result.output


def test_existing_file_needs_force_and_an_interrupted_wizard_writes_nothing(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("# mine\n")
    result = init(path, [])
    assert result.exit_code == 2 and "already exists (use --force" in result.stderr
    assert "Support address" not in result.output  # refused before the first question
    result = init(path, ["help@shop.example", "", "local"], "--force")  # input ends before the time zone
    assert result.exit_code == 1 and "Aborted" in result.output
    assert path.read_text() == "# mine\n"
    result = init(path, ["help@shop.example", "", "local", "UTC", ""], "--force")
    assert result.exit_code == 0 and load_config(path).mailbox.backend == "local"
    missing = tmp_path / "no" / "such" / "dir.toml"
    result = init(missing, [])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_init_example_prints_the_packaged_example_which_loads(tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["init", "--example"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output == PACKAGED_EXAMPLE.read_text(encoding="utf-8") == example_config()
    assert (ROOT / "config.example.toml").read_text(encoding="utf-8") == result.output  # the repo's copy
    path = tmp_path / "mailhelpdesk.toml"
    path.write_text(result.output)
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "x")
    config = load_config(path)
    assert config.helpdesk.address == "support@example.com" and len(config.agents) == 2
    assert "mailhelpdesk init --example" in result.output


def test_timezone_answers():
    assert timezone_name("Europe/Berlin") == "Europe/Berlin"
    assert timezone_name("america/new_york") == "America/New_York"
    for answer, suggestion in (("Berlin", "Europe/Berlin"), ("New York", "America/New_York"),
                               ("Europe/Berln", "Europe/Berlin")):
        with pytest.raises(click.BadParameter, match=f"did you mean .*{suggestion}"):
            timezone_name(answer)
    with pytest.raises(click.BadParameter, match="like Europe/Berlin"):
        timezone_name("Mars/Olympus_Mons")
    zones = frozenset({"Europe/Berlin"})  # a fixed zone list: no dependence on this machine's tzdata
    with pytest.raises(click.BadParameter, match="did you mean Europe/Berlin"):
        timezone_name("berlin", zones)


def test_agents_answers():
    assert parse_agents("") == []
    assert parse_agents('"Smith, Ann" <ann@x.example>, bob@x.example') == [("Smith, Ann", "ann@x.example"),
                                                                          ("Bob", "bob@x.example")]
    for text, message in (("ann", "write each agent"), ("ann@x.example, ann@x.example", "listed twice"),
                          ("Ann <a@x.example>, Ann <b@x.example>", "two agents are called 'Ann'")):
        with pytest.raises(click.BadParameter, match=message):
            parse_agents(text)


def test_the_wizard_config_passes_check_against_real_servers(tmp_path, imap_account):
    """A user's run: init answered for a local Dovecot and SMTP server, then `mailhelpdesk check`."""
    from servers import SmtpSink  # tests/ is on sys.path (conftest.py)

    sink = SmtpSink(auth=(imap_account.username, imap_account.password))
    try:
        path = tmp_path / "mailhelpdesk.toml"
        answers = ["help@shop.example", "Shop", "", "127.0.0.1", "none", str(imap_account.port),
                   "127.0.0.1", "none", str(sink.port), imap_account.username, "", "SHOP_PW",
                   "Europe/Berlin", "Ann <ann@shop.example>"]
        result = init(path, answers)
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output  # security none on loopback is fine
        check = CliRunner().invoke(main, ["check", "--config", str(path)],
                                   env={"SHOP_PW": imap_account.password}, catch_exceptions=False)
        assert check.exit_code == 0, check.output + check.stderr
        assert "all good" in check.output
    finally:
        sink.stop()


def test_an_smtp_relay_without_encryption_gets_no_login_so_the_first_check_passes(tmp_path, monkeypatch):
    path = tmp_path / "mailhelpdesk.toml"
    answers = ["help@acme.example", "Acme Support", "other", "mail.acme.example", "", "",  # IMAP: ssl, 993
               "relay.acme.example", "none", "",  # SMTP: a relay on port 25, no encryption
               "", "", "",  # login = the address; password from env; its variable
               "Europe/Berlin", "Alice Smith <alice@acme.example>"]
    result = init(path, answers)
    assert result.exit_code == 0, result.output
    assert "# a relay that asks for a login: uncomment these" in path.read_text()
    monkeypatch.setenv("MAILHELPDESK_PASSWORD", "pw")
    config = load_config(path)
    assert (config.smtp.host, config.smtp.security, config.smtp.effective_port) == ("relay.acme.example", "none", 25)
    assert config.smtp.username == "" and config.imap.username == "help@acme.example"
