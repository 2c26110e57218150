"""Contract tests for tests/gmail_fake.py: drive the fake ONLY through the real google-api-python-client and
check it answers the way the Gmail API documents (shapes, errors, paging, history, batch, quota) for the methods
the adapter calls, and 501 for what it does not serve."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:  # tests/conftest.py adds it too; keep this file runnable on its own
    sys.path.insert(0, _TESTS_DIR)

from gmail_fake import LABEL_PALETTE, GmailFake, build_service  # noqa: E402

import google.auth.exceptions  # noqa: E402
import google.oauth2.credentials  # noqa: E402
import googleapiclient.discovery  # noqa: E402
import googleapiclient.http  # noqa: E402
from googleapiclient.errors import HttpError  # noqa: E402

MAILBOX = "help@example.com"


# ---------------------------------------------------------------------------------------------- helpers

@pytest.fixture
def gm():
    with GmailFake(MAILBOX, seed=1234) as server:
        yield server


@pytest.fixture
def svc(gm):
    return build_service(gm)


def make_raw(subject="Printer on fire", sender="alice@customer.test", to=MAILBOX, body="It is burning.",
             msgid=None, in_reply_to=None, references=None, extra=None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = msgid or make_msgid(domain="customer.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (extra or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


def list_ids(svc, **kw) -> list[str]:
    resp = svc.users().messages().list(userId="me", **kw).execute()
    return [m["id"] for m in resp.get("messages", [])]


# ---------------------------------------------------------------------------------------------- wiring

def test_client_built_with_api_endpoint_talks_to_the_fake(gm):
    service = googleapiclient.discovery.build(
        "gmail", "v1", credentials=google.oauth2.credentials.Credentials(token="x"), static_discovery=True,
        cache_discovery=False, client_options={"api_endpoint": gm.url})
    gm.add_message(make_raw())
    profile = service.users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == MAILBOX
    assert profile["messagesTotal"] == 1 and profile["threadsTotal"] == 1
    assert profile["historyId"].isdigit() and int(profile["historyId"]) == gm.history_id
    # the mailbox address works as userId too (the client url-quotes the @)
    assert service.users().getProfile(userId=MAILBOX).execute()["emailAddress"] == MAILBOX
    assert gm.requests[0] == ("GET", "/gmail/v1/users/me/profile?alt=json")
    assert gm.requests[1] == ("GET", "/gmail/v1/users/help%40example.com/profile?alt=json")
    assert gm.calls[0] == ("users.getProfile", "GET", "/gmail/v1/users/me/profile")
    # ...but a batch built from that service would go to Google: api_endpoint is ignored for batches
    assert service.new_batch_http_request()._batch_uri == "https://gmail.googleapis.com/batch"
    # another user's mailbox is refused like Gmail does
    with pytest.raises(HttpError) as exc:
        service.users().getProfile(userId="someone@else.test").execute()
    assert exc.value.status_code == 403
    assert error_of(exc.value)["message"].startswith("Delegation denied")


def test_build_service_sends_batches_to_the_fake(gm, svc):
    assert svc.new_batch_http_request()._batch_uri == gm.url + "batch"
    mid = gm.add_message(make_raw())
    got = {}
    batch = svc.new_batch_http_request(callback=lambda rid, resp, exc: got.__setitem__(rid, (resp, exc)))
    batch.add(svc.users().messages().get(userId="me", id=mid, format="minimal"))
    batch.add(svc.users().labels().list(userId="me"))
    batch.execute()
    assert got["1"][1] is None and got["1"][0]["id"] == mid
    assert got["2"][1] is None and any(lab["id"] == "INBOX" for lab in got["2"][0]["labels"])
    assert [r for r in gm.requests] == [("POST", "/batch")]
    assert [c[0] for c in gm.calls] == ["users.messages.get", "users.labels.list"]


# ---------------------------------------------------------------------------------------------- labels

def test_labels_create_nested_with_palette_color_and_errors(gm, svc):
    labels = svc.users().labels().list(userId="me").execute()["labels"]
    system = {lab["id"]: lab for lab in labels}
    for lid in ("INBOX", "SENT", "UNREAD", "IMPORTANT", "TRASH", "SPAM", "DRAFT", "STARRED", "CATEGORY_PERSONAL"):
        assert system[lid]["type"] == "system" and system[lid]["name"] == lid

    parent = svc.users().labels().create(userId="me", body={
        "name": "Helpdesk", "labelListVisibility": "labelShow", "messageListVisibility": "show"}).execute()
    assert parent["id"].startswith("Label_") and parent["type"] == "user"
    color = {"backgroundColor": "#16a766", "textColor": "#ffffff"}
    assert color["backgroundColor"] in LABEL_PALETTE and len(LABEL_PALETTE) > 100
    nested = svc.users().labels().create(userId="me", body={
        "name": "Helpdesk/Status/Open", "labelListVisibility": "labelShow", "messageListVisibility": "show",
        "color": color}).execute()
    assert nested["name"] == "Helpdesk/Status/Open" and nested["color"] == color
    assert nested["id"] != parent["id"]

    # duplicate name (Gmail compares case-insensitively) -> 409
    with pytest.raises(HttpError) as exc:
        svc.users().labels().create(userId="me", body={"name": "helpdesk/status/OPEN"}).execute()
    err = error_of(exc.value)
    assert exc.value.status_code == 409 and err["message"] == "Label name exists or conflicts"
    assert err["code"] == 409 and err["errors"][0]["domain"] == "global" and "status" in err

    # reserved names and missing name -> 400 Invalid label name
    for body in ({"name": "INBOX"}, {"name": "Muted"}, {"name": "  "}, {}):
        with pytest.raises(HttpError) as exc:
            svc.users().labels().create(userId="me", body=body).execute()
        assert exc.value.status_code == 400
        err = error_of(exc.value)
        assert err["message"] == "Invalid label name"
        assert err["errors"][0]["reason"] == "invalidArgument" and err["status"] == "INVALID_ARGUMENT"

    # colours off the palette, or half a colour -> 400
    for bad in ({"backgroundColor": "#123456", "textColor": "#ffffff"}, {"backgroundColor": "#16a766"}):
        with pytest.raises(HttpError) as exc:
            svc.users().labels().create(userId="me", body={"name": "Colourful", "color": bad}).execute()
        assert exc.value.status_code == 400

    names = [lab["name"] for lab in svc.users().labels().list(userId="me").execute()["labels"]]
    assert "Helpdesk" in names and "Helpdesk/Status/Open" in names and "Colourful" not in names


# ---------------------------------------------------------------------------------------------- messages

def test_list_with_queries_paging_and_spam_trash(gm, svc):
    now = dt.datetime.fromtimestamp(gm.clock(), dt.timezone.utc)  # the server's now, never the machine's
    open_id = gm.add_label("Helpdesk/Status/Open")
    ids = {}
    ids["new"] = gm.add_message(make_raw("new one"), internal_date=now - dt.timedelta(hours=1))
    ids["day3"] = gm.add_message(make_raw("three days"), internal_date=now - dt.timedelta(days=3))
    ids["open"] = gm.add_message(make_raw("open ticket", msgid="<ticket-1@customer.test>"),
                                 label_ids=["INBOX", open_id], internal_date=now - dt.timedelta(hours=5))
    ids["old"] = gm.add_message(make_raw("ancient"), internal_date=dt.datetime(2020, 1, 15, 12, tzinfo=dt.timezone.utc))
    ids["archived"] = gm.add_message(make_raw("archived"), label_ids=[], internal_date=now - dt.timedelta(hours=2))
    ids["spam"] = gm.add_message(make_raw("buy now"), label_ids=["SPAM"], internal_date=now - dt.timedelta(minutes=5))
    ids["trash"] = gm.add_message(make_raw("deleted"), label_ids=["TRASH", "INBOX"], internal_date=now)
    sent = svc.users().messages().send(userId="me", body={"raw": b64(make_raw(
        "outgoing", sender=MAILBOX, to="bob@customer.test"))}).execute()

    resp = svc.users().messages().list(userId="me", q="in:inbox").execute()
    assert [m["id"] for m in resp["messages"]] == [ids["new"], ids["open"], ids["day3"], ids["old"]]  # newest first
    assert all(set(m) == {"id", "threadId"} for m in resp["messages"])
    assert resp["resultSizeEstimate"] == 4 and "nextPageToken" not in resp
    assert list_ids(svc, q="in:sent") == [sent["id"]]
    assert list_ids(svc, q="newer_than:2d in:inbox") == [ids["new"], ids["open"]]
    assert list_ids(svc, q="after:2021/01/01 in:inbox") == [ids["new"], ids["open"], ids["day3"]]
    assert list_ids(svc, q="before:2021/01/01") == [ids["old"]]
    assert list_ids(svc, q="label:Helpdesk/Status/Open") == [ids["open"]]
    assert list_ids(svc, q="label:helpdesk-status-open") == [ids["open"]]
    assert list_ids(svc, q="in:inbox -label:Helpdesk/Status/Open newer_than:7d") == [ids["new"], ids["day3"]]
    assert list_ids(svc, q="rfc822msgid:ticket-1@customer.test") == [ids["open"]]
    assert list_ids(svc, q="rfc822msgid:<ticket-1@customer.test>") == [ids["open"]]
    assert list_ids(svc, labelIds=["INBOX", open_id]) == [ids["open"]]
    assert list_ids(svc, q="subject:ancient") == [ids["old"]]
    # SPAM and TRASH are left out unless asked for
    assert ids["spam"] not in list_ids(svc) and ids["trash"] not in list_ids(svc)
    assert {ids["spam"], ids["trash"]} <= set(list_ids(svc, includeSpamTrash=True))
    assert list_ids(svc, q="in:spam") == [ids["spam"]]
    assert svc.users().messages().list(userId="me", q="in:inbox label:nope").execute() == {"resultSizeEstimate": 0}

    # paging
    seen, req, pages = [], svc.users().messages().list(userId="me", maxResults=3), 0
    while req is not None:
        resp = req.execute()
        pages += 1
        seen += [m["id"] for m in resp.get("messages", [])]
        req = svc.users().messages().list_next(req, resp)
    assert pages == 2 and len(seen) == len(set(seen)) == 6
    with pytest.raises(HttpError) as exc:
        svc.users().messages().list(userId="me", pageToken="bogus").execute()
    assert exc.value.status_code == 400


def test_get_raw_and_minimal_formats(gm, svc):
    msg = EmailMessage()
    msg["From"] = "Zoë <zoe@customer.test>"
    msg["To"] = MAILBOX
    msg["Subject"] = "Ünïcode & <stuff>"
    msg["Message-ID"] = "<att-1@customer.test>"
    msg.set_content("Plain body with 'quotes' & more.")
    msg.add_alternative("<p>HTML body</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf")
    raw = msg.as_bytes()
    mid = gm.add_message(raw)

    got = svc.users().messages().get(userId="me", id=mid, format="raw").execute()
    assert base64.urlsafe_b64decode(got["raw"]) == raw
    assert got["sizeEstimate"] == len(raw) and "payload" not in got
    assert got["labelIds"] == ["INBOX", "UNREAD"] and got["threadId"] == mid
    assert got["internalDate"].isdigit() and got["historyId"].isdigit()
    assert got["snippet"] == "Plain body with &#39;quotes&#39; &amp; more."

    minimal = svc.users().messages().get(userId="me", id=mid, format="minimal").execute()
    assert "payload" not in minimal and "raw" not in minimal

    # what the adapter never asks for is not served: format=full (the default) and metadata, partial responses
    for request in (svc.users().messages().get(userId="me", id=mid),
                    svc.users().messages().get(userId="me", id=mid, format="metadata"),
                    svc.users().messages().get(userId="me", id=mid, format="raw", fields="id")):
        with pytest.raises(HttpError) as exc:
            request.execute()
        assert exc.value.status_code == 501 and error_of(exc.value)["status"] == "UNIMPLEMENTED"

    for bad_id, status in (("0123456789abcdef", 404), ("not-an-id", 400)):
        with pytest.raises(HttpError) as exc:
            svc.users().messages().get(userId="me", id=bad_id).execute()
        assert exc.value.status_code == status


def test_modify_labels(gm, svc):
    lid = gm.add_label("Helpdesk/Status/Open")
    mid = gm.add_message(make_raw())
    resp = svc.users().messages().modify(userId="me", id=mid, body={
        "addLabelIds": [lid], "removeLabelIds": ["UNREAD"]}).execute()
    assert resp == {"id": mid, "threadId": mid, "labelIds": ["INBOX", lid]}
    assert gm.message(mid)["labelIds"] == ["INBOX", lid]
    cases = [({"addLabelIds": ["Label_77"]}, "labelId not found"),
             ({"addLabelIds": ["NOPE"]}, "Invalid label: NOPE"),
             ({"removeLabelIds": ["SENT"]}, "Invalid label: SENT"),
             ({}, "No label add or removes specified")]
    for body, message in cases:
        with pytest.raises(HttpError) as exc:
            svc.users().messages().modify(userId="me", id=mid, body=body).execute()
        assert exc.value.status_code == 400 and error_of(exc.value)["message"] == message
    with pytest.raises(HttpError) as exc:
        svc.users().messages().modify(userId="me", id="fedcba9876543210", body={"addLabelIds": ["STARRED"]}).execute()
    assert exc.value.status_code == 404
    assert svc.users().messages().batchModify(userId="me", body={
        "ids": [mid], "removeLabelIds": ["INBOX"]}).execute() == ""
    assert gm.message(mid)["labelIds"] == [lid]
    with pytest.raises(HttpError) as exc:
        svc.users().messages().batchModify(userId="me", body={
            "ids": [format(i, "x") for i in range(1001)], "addLabelIds": ["STARRED"]}).execute()
    assert exc.value.status_code == 400 and error_of(exc.value)["message"] == "Number of ids cannot exceed 1000"


# ---------------------------------------------------------------------------------------------- batch

def test_batch_of_30_gets_and_modifies_counts_each_call(gm, svc):
    lid = gm.add_label("Helpdesk/Seen")
    mids = [gm.add_message(make_raw(f"ticket {i}")) for i in range(30)]
    gm.reset_counters()

    results = {}
    batch = svc.new_batch_http_request()
    for mid in mids:
        batch.add(svc.users().messages().get(userId="me", id=mid, format="raw"),
                  callback=lambda rid, resp, exc: results.__setitem__(rid, (resp, exc)), request_id=mid)
    batch.execute()
    assert len(results) == 30 and all(exc is None for _r, exc in results.values())
    for mid, (resp, _exc) in results.items():
        assert resp["id"] == mid
        assert base64.urlsafe_b64decode(resp["raw"]) == gm.message(mid)["raw"]
    assert gm.requests == [("POST", "/batch")]
    assert gm.call_counts() == {"users.messages.get": 30}
    assert gm.quota_units == 30 * 5

    gm.reset_counters()
    mods = {}
    batch = svc.new_batch_http_request(callback=lambda rid, resp, exc: mods.__setitem__(rid, (resp, exc)))
    for mid in mids:
        batch.add(svc.users().messages().modify(userId="me", id=mid, body={
            "addLabelIds": [lid], "removeLabelIds": ["UNREAD"]}))
    batch.execute()
    assert len(mods) == 30 and all(exc is None and resp["labelIds"] == ["INBOX", lid] for resp, exc in mods.values())
    assert gm.call_counts() == {"users.messages.modify": 30} and gm.quota_units == 150
    assert all(gm.message(mid)["labelIds"] == ["INBOX", lid] for mid in mids)


def test_batch_over_100_parts_is_rejected(gm, svc):
    mid = gm.add_message(make_raw())
    batch = svc.new_batch_http_request()
    for _ in range(101):
        batch.add(svc.users().messages().get(userId="me", id=mid, format="minimal"))
    with pytest.raises(HttpError) as exc:
        batch.execute()
    assert exc.value.status_code == 400
    assert "Inner request count exceeds the limit" in error_of(exc.value)["message"]
    assert gm.calls == []


def test_429_inside_batch_hits_only_that_sub_request(gm, svc):
    mids = [gm.add_message(make_raw(f"m{i}")) for i in range(3)]
    gm.fail_next(1, status=429)
    out = {}
    batch = svc.new_batch_http_request(callback=lambda rid, resp, exc: out.__setitem__(rid, (resp, exc)))
    for mid in mids:
        batch.add(svc.users().messages().get(userId="me", id=mid, format="minimal"))
    batch.execute()
    resp, exc = out["1"]
    assert resp is None and isinstance(exc, HttpError) and exc.status_code == 429
    err = error_of(exc)
    assert err["errors"][0]["reason"] == "rateLimitExceeded" and err["status"] == "RESOURCE_EXHAUSTED"
    assert out["2"][1] is None and out["3"][1] is None and out["3"][0]["id"] == mids[2]
    assert len(gm.calls) == 3


# ---------------------------------------------------------------------------------------------- retries, auth

def test_fail_next_then_execute_with_retries_succeeds(gm, svc, monkeypatch):
    sleeps = []
    monkeypatch.setattr(googleapiclient.http.time, "sleep", sleeps.append)
    gm.fail_next(2, status=429)
    assert svc.users().getProfile(userId="me").execute(num_retries=3)["emailAddress"] == MAILBOX
    assert len(sleeps) == 2 and [c[0] for c in gm.calls] == ["users.getProfile"] * 3
    assert gm.quota_units == 1  # injected failures cost nothing

    gm.fail_next(1, status=403, reason="userRateLimitExceeded")
    gm.fail_next(1, status=503)
    assert svc.users().labels().list(userId="me").execute(num_retries=3)["labels"]
    assert len(sleeps) == 4

    gm.fail_next(1, status=500)  # without retries the error surfaces
    with pytest.raises(HttpError) as exc:
        svc.users().getProfile(userId="me").execute()
    assert exc.value.status_code == 500 and error_of(exc.value)["errors"][0]["reason"] == "backendError"

    gm.fail_next(1, status=429, method="users.messages.send")  # only hits the named method
    svc.users().getProfile(userId="me").execute()
    with pytest.raises(HttpError):
        svc.users().messages().send(userId="me", body={"raw": b64(make_raw(to="x@y.test"))}).execute()


def test_require_token_401_and_refresh(gm):
    gm.require_token = "good-token"
    assert build_service(gm).users().getProfile(userId="me").execute()["emailAddress"] == MAILBOX

    # A token that no longer works and no way to refresh it: the client gives up with RefreshError.
    bad = build_service(gm, google.oauth2.credentials.Credentials(token="expired"))
    with pytest.raises(google.auth.exceptions.RefreshError):
        bad.users().getProfile(userId="me").execute()
    assert gm.calls[-1][0] == "users.getProfile"

    # With a refresh token the client refreshes at the fake's token endpoint and retries.
    gm.refresh_tokens.add("refresh-1")

    def creds():
        return google.oauth2.credentials.Credentials(
            token="expired", refresh_token="refresh-1", token_uri=gm.token_uri, client_id="cid", client_secret="cs")

    c = creds()
    assert build_service(gm, c).users().getProfile(userId="me").execute()["emailAddress"] == MAILBOX
    assert c.token == "good-token" and gm.token_requests == 1

    # inside a batch a 401 comes back per sub-request; the client refreshes once and resends those parts
    mid = gm.add_message(make_raw())
    out = {}
    c = creds()
    batch_svc = build_service(gm, c)
    batch = batch_svc.new_batch_http_request(callback=lambda rid, resp, exc: out.__setitem__(rid, (resp, exc)))
    batch.add(batch_svc.users().messages().get(userId="me", id=mid, format="minimal"))
    batch.add(batch_svc.users().getProfile(userId="me"))
    gm.reset_counters()
    batch.execute()
    assert out["1"][1] is None and out["1"][0]["id"] == mid and out["2"][1] is None
    assert [r[1] for r in gm.requests] == ["/batch", "/token", "/batch"] and len(gm.calls) == 4

    gm.refresh_tokens.clear()  # revoked
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        build_service(gm, creds()).users().getProfile(userId="me").execute()


# ---------------------------------------------------------------------------------------------- history

def test_history_after_send_and_set_labels(gm, svc):
    lid = gm.add_label("Helpdesk/Status/Open")
    inbound = gm.add_message(make_raw())
    start = svc.users().getProfile(userId="me").execute()["historyId"]
    assert svc.users().history().list(userId="me", startHistoryId=start).execute() == {"historyId": start}

    sent = svc.users().messages().send(userId="me", body={"raw": b64(make_raw(
        "Other topic", sender=MAILBOX, to="alice@customer.test"))}).execute()
    gm.set_labels(inbound, add=[lid], remove=["UNREAD"])
    gm.set_labels(inbound, add=["STARRED"])

    resp = svc.users().history().list(userId="me", startHistoryId=start).execute()
    current = svc.users().getProfile(userId="me").execute()["historyId"]
    assert resp["historyId"] == current and "nextPageToken" not in resp
    hist = resp["history"]
    assert len(hist) == 3
    ids = [int(h["id"]) for h in hist]
    assert ids == sorted(ids) and ids[0] > int(start) and int(current) == ids[-1]
    first, second, third = hist
    assert first["messagesAdded"] == [{"message": {"id": sent["id"], "threadId": sent["threadId"],
                                                   "labelIds": ["SENT"]}}]
    assert first["messages"] == [{"id": sent["id"], "threadId": sent["threadId"]}]
    assert second["labelsAdded"] == [{"message": {"id": inbound, "threadId": inbound, "labelIds": ["INBOX", lid]},
                                      "labelIds": [lid]}]
    assert second["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert third["labelsAdded"][0]["labelIds"] == ["STARRED"] and "labelsRemoved" not in third

    only_added = svc.users().history().list(userId="me", startHistoryId=start,
                                            historyTypes=["messageAdded"]).execute()["history"]
    assert len(only_added) == 1 and set(only_added[0]) == {"id", "messages", "messagesAdded"}
    removed = svc.users().history().list(userId="me", startHistoryId=start,
                                         historyTypes=["labelRemoved"]).execute()["history"]
    assert [h["id"] for h in removed] == [second["id"]] and set(removed[0]) == {"id", "messages", "labelsRemoved"}
    by_label = svc.users().history().list(userId="me", startHistoryId=start, labelId="SENT").execute()["history"]
    assert [h["id"] for h in by_label] == [first["id"]]
    # message historyId points at the last change of that message
    got = svc.users().messages().get(userId="me", id=inbound, format="minimal").execute()
    assert got["historyId"] == third["id"]


def test_history_paging_and_gaps(gm, svc):
    start = svc.users().getProfile(userId="me").execute()["historyId"]
    mids = [gm.add_message(make_raw(f"n{i}")) for i in range(5)]
    for mid in mids[:2]:
        gm.set_labels(mid, remove=["UNREAD"])
    req = svc.users().history().list(userId="me", startHistoryId=start, maxResults=3)
    pages, records = [], []
    while req is not None:
        resp = req.execute()
        pages.append(resp)
        records += resp.get("history", [])
        req = svc.users().history().list_next(req, resp)
    assert [len(p.get("history", [])) for p in pages] == [3, 3, 1]
    assert all(p["historyId"] == pages[-1]["historyId"] for p in pages)
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(set(ids)) and len(ids) == 7
    assert any(b - a > 1 for a, b in zip(ids, ids[1:])), "history ids should have gaps"
    assert [r["messagesAdded"][0]["message"]["id"] for r in records[:5]] == mids


def test_expired_history_answers_404(gm, svc):
    old = svc.users().getProfile(userId="me").execute()["historyId"]
    gm.add_message(make_raw())
    newer = svc.users().getProfile(userId="me").execute()["historyId"]
    gm.expire_history(int(newer))
    with pytest.raises(HttpError) as exc:
        svc.users().history().list(userId="me", startHistoryId=old).execute()
    assert exc.value.status_code == 404
    err = error_of(exc.value)
    assert err == {"code": 404, "message": "Requested entity was not found.",
                   "errors": [{"message": "Requested entity was not found.", "domain": "global",
                               "reason": "notFound"}],
                   "status": "NOT_FOUND"}
    assert svc.users().history().list(userId="me", startHistoryId=newer).execute() == {"historyId": newer}


# ---------------------------------------------------------------------------------------------- threads, send

def test_send_with_thread_id_lands_in_that_thread(gm, svc):
    inbound_msgid = "<q1@customer.test>"
    inbound = gm.add_message(make_raw("Printer on fire", msgid=inbound_msgid))
    thread_id = gm.message(inbound)["threadId"]
    reply_msgid = "<r1@example.com>"
    reply = make_raw("Re: Printer on fire", sender=MAILBOX, to="alice@customer.test", msgid=reply_msgid,
                     in_reply_to=inbound_msgid, references=inbound_msgid)
    sent = svc.users().messages().send(userId="me", body={"raw": b64(reply), "threadId": thread_id}).execute()
    assert sent["threadId"] == thread_id and sent["labelIds"] == ["SENT"] and set(sent) == {"id", "threadId", "labelIds"}
    stored = gm.message(sent["id"])["raw"]
    assert stored.count(b"Message-ID:") == 1 and reply_msgid.encode() in stored  # not replaced

    assert [i for i in gm.message_ids() if gm.message(i)["threadId"] == thread_id] == [inbound, sent["id"]]

    # Gmail's rule: threadId alone is not enough — subject and References must match too
    wrong_subject = make_raw("Something else", sender=MAILBOX, to="alice@customer.test",
                             in_reply_to=inbound_msgid, references=inbound_msgid)
    s2 = svc.users().messages().send(userId="me", body={"raw": b64(wrong_subject), "threadId": thread_id}).execute()
    assert s2["threadId"] != thread_id
    no_refs = make_raw("Re: Printer on fire", sender=MAILBOX, to="alice@customer.test")
    s3 = svc.users().messages().send(userId="me", body={"raw": b64(no_refs), "threadId": thread_id}).execute()
    assert s3["threadId"] != thread_id
    s4 = svc.users().messages().send(userId="me", body={"raw": b64(reply.replace(b"r1@", b"r2@"))}).execute()
    assert s4["threadId"] == s4["id"]  # no threadId -> new thread

    # Gmail adds a Message-ID when missing and refuses mail without recipients
    bare = b"To: bob@customer.test\r\nSubject: hi\r\n\r\nbody\r\n"
    s5 = svc.users().messages().send(userId="me", body={"raw": b64(bare)}).execute()
    stored = gm.message(s5["id"])["raw"]
    assert b"Message-ID: <" in stored and b"From: help@example.com" in stored and stored.endswith(b"\r\nbody\r\n")
    # a From address the account may not send as is replaced by the mailbox address
    spoof = make_raw("hello", sender="Mallory <mallory@evil.test>", to="bob@customer.test")
    s6 = svc.users().messages().send(userId="me", body={"raw": b64(spoof)}).execute()
    assert b"From: Mallory <help@example.com>" in gm.message(s6["id"])["raw"]
    assert gm.sent[-1][0] == s6["id"]
    with pytest.raises(HttpError) as exc:
        svc.users().messages().send(userId="me", body={"raw": b64(b"Subject: x\r\n\r\nno rcpt\r\n")}).execute()
    assert exc.value.status_code == 400 and error_of(exc.value)["message"] == "Recipient address required"

    # an inbound customer reply threads automatically (references + same subject)
    follow = gm.add_message(make_raw("RE: Printer on fire", in_reply_to=reply_msgid,
                                     references=f"{inbound_msgid} {reply_msgid}"))
    assert gm.message(follow)["threadId"] == thread_id
    other = gm.add_message(make_raw("New subject", in_reply_to=reply_msgid, references=reply_msgid))
    assert gm.message(other)["threadId"] == other


def test_insert_joins_the_thread_it_references(gm, svc):
    a = gm.add_message(make_raw("Alpha", msgid="<a@x.test>"))
    gm.add_message(make_raw("Beta"))
    ins = svc.users().messages().insert(userId="me", body={
        "raw": b64(make_raw("Re: Alpha", msgid="<a2@x.test>", in_reply_to="<a@x.test>", references="<a@x.test>")),
        "labelIds": ["INBOX", "UNREAD"]}).execute()
    assert ins["threadId"] == a and ins["labelIds"] == ["INBOX", "UNREAD"]
    # labels are per message: a new reply in a labelled thread does not carry the thread's labels
    lid = gm.add_label("Helpdesk/Ticket")
    gm.set_labels(a, add=[lid])
    later = gm.add_message(make_raw("Re: Alpha", in_reply_to="<a2@x.test>", references="<a@x.test> <a2@x.test>"))
    assert gm.message(later)["threadId"] == a and lid not in gm.message(later)["labelIds"]


def test_watch(gm, svc):
    with pytest.raises(HttpError) as exc:
        svc.users().watch(userId="me", body={"topicName": "not-a-topic"}).execute()
    assert exc.value.status_code == 400
    resp = svc.users().watch(userId="me", body={"topicName": "projects/p/topics/gmail",
                                                "labelIds": ["INBOX"]}).execute()
    assert resp["historyId"] == str(gm.history_id) and int(resp["expiration"]) > gm.clock() * 1000
    gm.add_message(make_raw())
    assert gm.notifications[-1] == {"emailAddress": MAILBOX, "historyId": gm.history_id}
    assert gm.quota_units == 100 + 100  # a rejected call still costs its units
