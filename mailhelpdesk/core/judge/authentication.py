"""Who vouches for a message: the receiving server's Authentication-Results (RFC 8601), read the careful way.

Pure: header values in, verdicts out. Anyone can write an `Authentication-Results` header; only the ones the
receiving server added count. That server is named by its authserv-id (`[commands] trusted_authserv_id`), and
per RFC 8601 §5 only the topmost header with that id is its own: headers above it were added after it (by the
receiving side), headers below may come from anyone. A pass proves an address only when it is aligned
with the address's domain: the same domain or the same organisational domain (Public Suffix List), never a
suffix match (`example.com.attacker.net` is not `example.com`)."""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Iterable

from mailhelpdesk.model import AuthHeader, AuthResult, AuthVerdict

AR_LIMIT = 4096  # characters of one header read; real ones are a few hundred, longer is not the server's
FIRST_TOKEN = re.compile(r"\s*(?:\([^()]*\)\s*)*([^\s;()\"]+)")


# --- parsing ------------------------------------------------------------------------------------------------


def parse_header(value: str) -> AuthHeader:
    """One header value -> AuthHeader. Never raises: what cannot be read is `readable=False` (still with the
    authserv-id when its first token can be read, so an unreadable header of the trusted server fails closed)."""
    import authres

    claimed = _first_token(value)
    if len(value) > AR_LIMIT:
        return AuthHeader(claimed, readable=False)
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(value)
        results = tuple(_result(r) for r in parsed.results)
        return AuthHeader(str(parsed.authserv_id or "").lower(), results)
    except Exception:  # authres raises SyntaxError and more on hostile input: unreadable, never a crash
        return AuthHeader(claimed, readable=False)


def _first_token(value: str) -> str:
    found = FIRST_TOKEN.match(value[:AR_LIMIT])
    return found.group(1).lower() if found else ""


def _result(result) -> AuthResult:
    method, outcome = str(result.method).lower(), str(result.result).lower()
    props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
    if method == "dkim":
        domain = props.get("header.d") or props.get("header.i", "")
    elif method == "spf":
        domain = props.get("smtp.mailfrom", "")
    elif method == "dmarc":
        domain = props.get("header.from", "")
    else:
        domain = ""
    return AuthResult(method, outcome, domain_of(domain))


def domain_of(value: str) -> str:
    """The domain of `user@domain`, `@domain` or `domain`, lower-cased, without quotes, brackets or a final dot."""
    value = value.strip().strip("<>").rsplit("@", 1)[-1]
    return value.strip().strip('"').rstrip(".").lower()


# --- which headers count ------------------------------------------------------------------------------------


def verdict(headers: Iterable[AuthHeader], trusted_authserv_id: str) -> AuthVerdict:
    """The trusted server's word: the topmost header with its authserv-id (RFC 8601 §5). Headers of other ids
    above it were added after it, on the receiving side, and are skipped; every header below it, even one with
    the same id, may have come with the mail and is ignored. (A server that writes several headers, such as
    Postfix with OpenDKIM and OpenDMARC milters, is trusted for its last and topmost one: OpenDMARC's.)"""
    trusted = trusted_authserv_id.strip().lower()
    if not trusted:
        return AuthVerdict(problem="no trusted authserv-id is configured ([commands] trusted_authserv_id)")
    header = next((h for h in headers if h.authserv_id == trusted), None)
    if header is None:
        return AuthVerdict(trusted, problem=f"no Authentication-Results from the receiving server {trusted}")
    if not header.readable:
        return AuthVerdict(trusted, problem=f"the Authentication-Results of {trusted} could not be read")
    return AuthVerdict(trusted, header.results, problem="")


# --- what a verdict proves ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _psl():
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the list bundled with the package: never fetched from the network


@functools.lru_cache(maxsize=4096)
def organisational_domain(domain: str) -> str:
    """`mail.example.co.uk` -> `example.co.uk` (the Public Suffix List, ICANN and private parts);
    a public suffix itself (`co.uk`, `github.io`) is its own organisation, shared with nobody."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return ""
    try:
        return _psl().privatesuffix(domain) or domain
    except Exception:
        return domain


def aligned(domain: str, other: str) -> bool:
    """Relaxed DMARC alignment: the same domain, or the same organisational domain. Never a suffix match."""
    a, b = domain_of(domain), domain_of(other)
    if not a or not b:
        return False
    return a == b or organisational_domain(a) == organisational_domain(b) != ""


def proves(found: AuthVerdict, address: str) -> tuple[bool, str]:
    """Does the trusted server vouch for mail From `address`? (an aligned DKIM, SPF or DMARC pass)"""
    if not found.trusted:
        return False, found.problem
    domain = domain_of(address)
    for method, name in (("dkim", "DKIM"), ("dmarc", "DMARC"), ("spf", "SPF")):
        for r in found.results:
            if r.method == method and r.result == "pass" and aligned(r.domain, domain):
                return True, f"{name} pass for {r.domain} ({found.authserv_id})"
    said = ", ".join(f"{r.method}={r.result}" + (f" ({r.domain})" if r.domain else "")
                     for r in found.results if r.method in ("dkim", "spf", "dmarc")) or "nothing about DKIM, SPF or DMARC"
    return False, (f"the receiving server {found.authserv_id} did not confirm that {address} sent it "
                   f"(no DKIM, SPF or DMARC pass for {domain}; it said: {said})")


def sender_failed(found: AuthVerdict, address: str) -> str:
    """Why the trusted server says mail From `address` is forged, or "": a DMARC fail for its domain, or an SPF
    fail for its domain that no aligned DKIM or DMARC pass outweighs (forwarded mail fails SPF but keeps DKIM)."""
    if not found.trusted or not address:
        return ""
    domain = domain_of(address)
    mine = [r for r in found.results if r.domain and aligned(r.domain, domain)]
    if any(r.method == "dmarc" and r.result == "fail" for r in mine):
        return f"DMARC fail for {domain} ({found.authserv_id})"
    if any(r.method in ("dkim", "dmarc") and r.result == "pass" for r in mine):
        return ""
    if any(r.method == "spf" and r.result == "fail" for r in mine):
        return f"SPF fail for {domain} ({found.authserv_id})"
    return ""


# --- for `check` --------------------------------------------------------------------------------------------


def seen_authserv_ids(messages: Iterable[tuple[AuthHeader, ...]]) -> Counter[str]:
    """How often each authserv-id is the topmost one in these messages (the last server that looked at them,
    which for inbound mail is normally the receiving server)."""
    seen: Counter[str] = Counter()
    for headers in messages:
        top = next((h.authserv_id for h in headers if h.authserv_id), "")
        if top:
            seen[top] += 1
    return seen


__all__ = ["AuthHeader", "AuthResult", "AuthVerdict", "aligned", "organisational_domain", "parse_header",
           "proves", "seen_authserv_ids", "sender_failed", "verdict"]
