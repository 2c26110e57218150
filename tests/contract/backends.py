"""One harness per backend, so the same behaviour tests run against a real Dovecot+SMTP and the Gmail API fake."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from pathlib import Path

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.app.daemon import Helpdesk

SUPPORT = "support@shop.example"
AGENTS = [{"name": "Alice", "email": "alice@shop.example"}, {"name": "Bob", "email": "bob@shop.example"}]


def base_config(tmp_path: Path) -> dict:
    return {
        "helpdesk": {"address": SUPPORT, "name": "Shop Support", "timezone": "Europe/Vienna",
                     "state_file": str(tmp_path / "state.json")},
        "agents": AGENTS,
        # the same behaviour on every backend, assignment notices included (off by default on Gmail)
        "assignment": {"notify": True},
    }


def addressed_to(monkeypatch, corpus, **sections: dict) -> None:
    """Make every harness of the test use a corpus's support address and agents, and its free-mail-like domains
    (corpus.FREE_MAIL_DOMAINS: without saying so, the per-domain acknowledgement limit would count six unrelated
    people at brightdesk.example as one company), plus `sections` of config of the test's own."""
    from corpus import FREE_MAIL_DOMAINS

    import backends

    monkeypatch.setattr(backends, "SUPPORT", corpus.support)
    monkeypatch.setattr(backends, "AGENTS", [{"name": n, "email": e} for n, e in corpus.agents])
    plain = backends.base_config

    def config(tmp_path: Path) -> dict:
        data = plain(tmp_path)
        data["helpdesk"]["free_mail_domains"] = list(FREE_MAIL_DOMAINS)
        return {**data, **sections}

    monkeypatch.setattr(backends, "base_config", config)


class ImapBackend:
    name = "imap"

    def __init__(self, account, sink, tmp_path: Path):
        self.account, self.sink, self.tmp_path = account, sink, tmp_path
        data = base_config(tmp_path)
        data["mailbox"] = {"backend": "imap"}
        data["imap"] = {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                        "password": account.password, "sent_folder": "Sent"}
        data["smtp"] = {"host": sink.host, "port": sink.port, "security": "none"}
        self.config = config_from_dict(data, tmp_path / "mailhelpdesk.toml")
        self.client = account.client()

    def helpdesk(self, clock) -> Helpdesk:
        return Helpdesk(self.config, clock=clock)

    def deliver(self, raw: bytes, when: datetime, sent: bool = False) -> str:
        folder = "Sent" if sent else "INBOX"
        uid = self.account.append(folder, raw, flags=[b"\\Seen"] if sent else [], when=when)
        validity = self.client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]
        return f"{folder}:{validity}:{uid}"

    def all_labels(self) -> dict[str, set[str]]:
        """Our labels on every message of the mailbox, by ref."""
        result = {}
        for folder in ("INBOX", "Sent"):
            info = self.client.select_folder(folder, readonly=True)
            uids = self.client.search("ALL")
            for uid, data in (self.client.fetch(uids, ["FLAGS"]) if uids else {}).items():
                flags = {f.decode() for f in data[b"FLAGS"]}
                result[f"{folder}:{info[b'UIDVALIDITY']}:{uid}"] = {f for f in flags if f.startswith("Helpdesk/")}
        return result

    def agent_relabels(self, ref: str, add: set[str], remove: set[str]) -> None:
        folder, _, uid = ref.rsplit(":", 2)
        self.client.select_folder(folder)
        if add:
            self.client.add_flags([int(uid)], sorted(add))
        if remove:
            self.client.remove_flags([int(uid)], sorted(remove))

    def outgoing(self) -> list[email.message.EmailMessage]:
        return [m.message for m in self.sink.messages]

    def close(self) -> None:
        pass


class GmailBackend:
    name = "gmail"

    def __init__(self, fake, tmp_path: Path):
        self.fake, self.tmp_path = fake, tmp_path
        data = base_config(tmp_path)
        data["mailbox"] = {"backend": "gmail"}
        data["gmail"] = {"api_endpoint": fake.url}
        self.config = config_from_dict(data, tmp_path / "mailhelpdesk.toml")

    def helpdesk(self, clock) -> Helpdesk:
        from google.oauth2.credentials import Credentials

        from mailhelpdesk.backends.gmail import GmailMailbox

        self.fake.clock = lambda: clock().timestamp()  # one "now" for the server and the helpdesk
        mailbox = GmailMailbox(self.config, credentials=Credentials(token="fake-token"))
        return Helpdesk(self.config, mailbox=mailbox, clock=clock)

    def deliver(self, raw: bytes, when: datetime, sent: bool = False) -> str:
        return self.fake.add_message(raw, label_ids=("SENT",) if sent else ("INBOX", "UNREAD"), internal_date=when)

    def all_labels(self) -> dict[str, set[str]]:
        names = {label["id"]: label["name"] for label in self.fake.labels()}
        result = {
            i: {names[lid] for lid in self.fake.message(i)["labelIds"] if names[lid].startswith("Helpdesk/")}
            for i in self.fake.message_ids()
        }
        return {i: labels for i, labels in result.items() if "Helpdesk/Records" not in labels}  # records are no mail

    def agent_relabels(self, ref: str, add: set[str], remove: set[str]) -> None:
        self.fake.set_labels(ref, add=sorted(add), remove=sorted(remove))

    def outgoing(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.fake.sent]

    def close(self) -> None:
        pass
