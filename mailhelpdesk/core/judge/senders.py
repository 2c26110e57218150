"""Who is "the same sender"? Addresses normalised for limits and for the customer's organisation. Pure.

A robot that answers from `support+4711@vendor.example`, then `support+4712@...` is one sender: per-sender limits
count by `sender_key`, which folds case and `+tags`. One that takes a fresh local part every time is still one
organisation: `domain_key` names a company's own domain, which has a budget of its own (a handful); free-mail
domains hold unrelated people, so there each address counts on its own.
"""

from __future__ import annotations

FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr",
    "hotmail.it", "hotmail.es", "live.com", "live.de", "live.fr", "live.co.uk", "msn.com", "passport.com",
    "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.es", "yahoo.it", "yahoo.co.jp", "ymail.com",
    "rocketmail.com", "aol.com", "aim.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com",
    "protonmail.ch", "pm.me", "tutanota.com", "tuta.io", "fastmail.com", "fastmail.fm", "zoho.com", "zohomail.com",
    "gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de", "posteo.de",
    "mailbox.org", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it",
    "mail.ru", "inbox.ru", "list.ru", "bk.ru", "yandex.ru", "yandex.com", "ya.ru", "rambler.ru", "ukr.net",
    "qq.com", "163.com", "126.com", "sina.com", "sohu.com", "yeah.net", "naver.com", "daum.net", "hanmail.net",
    "seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl", "rediffmail.com", "btinternet.com", "comcast.net",
    "verizon.net", "att.net", "sbcglobal.net", "bluewin.ch", "hushmail.com", "mail.com", "email.com", "inbox.com",
})
_DOTLESS = frozenset({"gmail.com", "googlemail.com"})  # Gmail ignores dots in the local part


def is_free_mail(domain: str, free: frozenset[str] = FREE_MAIL) -> bool:
    """A domain where anybody can have an address: its users are not one organisation."""
    return domain.strip().lower().rstrip(".") in free


def normalise_address(address: str) -> str:
    """`Anna.Smith+shop@GMail.com` -> `annasmith@gmail.com`: lower case, no `+tag` (nor Gmail's dots).
    "" for something that is not an address."""
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return ""
    domain = domain.rstrip(".")
    base = local.split("+", 1)[0] or local  # "+tag" alone (a local part starting with +) stays as it is
    if domain in _DOTLESS:
        base = base.replace(".", "") or base
    return f"{base}@{domain}"


def organisation(address: str, free: frozenset[str] = FREE_MAIL) -> str:
    """The organisation an address belongs to (its domain), or "" for a free-mail address or none.
    `free`: the free-mail domains (FREE_MAIL and the config's `[helpdesk] free_mail_domains`)."""
    domain = normalise_address(address).rpartition("@")[2]
    return "" if not domain or is_free_mail(domain, free) else domain


def sender_key(address: str) -> str:
    """The key per-sender limits (and the sent log) count by: the address without case or `+tag`."""
    return normalise_address(address) or address.strip().lower()


def domain_key(address: str, free: frozenset[str] = FREE_MAIL) -> str:
    """The key a company's budget counts by (its domain), "" on a free-mail domain (no shared budget there)."""
    return organisation(address, free)


def same_sender(a: str, b: str) -> bool:
    """The same mailbox, written differently (case, `+tag`)."""
    na, nb = normalise_address(a), normalise_address(b)
    return bool(na) and na == nb
