"""Gmail push: with a Pub/Sub subscription configured, new mail is noticed within seconds, not at the next poll."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gmail_fake import GmailFake

from backends import GmailBackend
from mailhelpdesk.app.daemon import serve
from clocks import wait_for
from test_faults import NOW, fresh_question

SUBSCRIPTION = "projects/shop/subscriptions/helpdesk"


class PubSubFake:
    """Pub/Sub's pull and acknowledge, fed by the Gmail fake's push notifications."""

    def __init__(self, gmail: GmailFake):
        self.gmail, self.delivered, self.acked, self.pulls = gmail, 0, [], 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path == f"/v1/{SUBSCRIPTION}:pull":
                    answer = fake.pull(body.get("maxMessages", 10))
                elif self.path == f"/v1/{SUBSCRIPTION}:acknowledge":
                    fake.acked += body["ackIds"]
                    answer = {}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def pull(self, limit: int) -> dict:
        self.pulls += 1
        deadline = time.monotonic() + 2  # a long poll, as Pub/Sub's pull
        while time.monotonic() < deadline:
            fresh = self.gmail.notifications[self.delivered : self.delivered + limit]
            if fresh:
                self.delivered += len(fresh)
                return {"receivedMessages": [
                    {"ackId": f"ack-{self.delivered}-{i}",
                     "message": {"data": base64.b64encode(json.dumps(n).encode()).decode(), "messageId": str(i)}}
                    for i, n in enumerate(fresh)
                ]}
            time.sleep(0.05)
        return {}

    def stop(self):
        self.server.shutdown()


def test_push_notices_new_mail_within_seconds(tmp_path):
    with GmailFake("support@shop.example", seed=5, clock=NOW.timestamp) as gmail:
        pubsub = PubSubFake(gmail)
        backend = GmailBackend(gmail, tmp_path)
        config = backend.config
        config = dataclasses.replace(
            config,
            mailbox=dataclasses.replace(config.mailbox, poll_interval=300),  # polling alone would take 5 minutes
            gmail=dataclasses.replace(config.gmail, pubsub_topic="projects/shop/topics/gmail",
                                      pubsub_subscription=SUBSCRIPTION, pubsub_endpoint=pubsub.url),
        )
        backend.config = config
        gmail.add_message(fresh_question(1))
        helpdesk = backend.helpdesk(lambda: NOW)
        stop = threading.Event()
        thread = threading.Thread(target=serve, args=(helpdesk, lambda r: None, stop), daemon=True)
        thread.start()
        try:
            assert wait_for(lambda: len(helpdesk.state.tickets) == 1, 30)
            assert wait_for(lambda: gmail.watch is not None, 10)
            assert gmail.watch["topicName"] == "projects/shop/topics/gmail"
            started = time.monotonic()
            gmail.add_message(fresh_question(2))
            assert wait_for(lambda: len(helpdesk.state.tickets) == 2, 15)
            assert time.monotonic() - started < 15
            assert pubsub.acked, "notifications are acknowledged"
        finally:
            stop.set()
            pubsub.stop()
            thread.join(30)
        assert not thread.is_alive(), "the daemon stops promptly even while waiting for push"
