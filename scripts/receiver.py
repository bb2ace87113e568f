"""A webhook receiver for run events on loopback, for `make up`: it checks each delivery's Standard
Webhooks signature (HMAC-SHA256 of ``<webhook-id>.<webhook-timestamp>.<body>``, compared in
constant time, the timestamp within 5 minutes), answers ``204``, and prints one line per run
that ended and, with ``--json``, the event. A bad signature is answered ``401``.

    .venv/bin/python -m scripts.receiver --port 8099 --secret whsec_...

and in local.settings.json (then restart `make up`):
``"FERRY_WEBHOOK_LOCAL_URL": "http://127.0.0.1:8099/"``, ``"FERRY_WEBHOOK_LOCAL_SECRET": "whsec_..."``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from shared.credentials import Secret
from shared.events.signing import signature

#: Seconds a delivery's timestamp may be off (Standard Webhooks' recommendation).
TOLERANCE = 300
MAX_BODY = 2 * 1024 * 1024


def verified(secret: Secret, headers: Any, body: bytes, now: float | None = None) -> bool:
    """Whether the delivery is signed with ``secret`` and recent."""
    message_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE:
        return False
    expected = signature(secret, message_id, int(stamp), body)
    given = (headers.get("webhook-signature") or "").split()
    return any(hmac.compare_digest(expected, s) for s in given)


def line(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    counts = data.get("counts") or {}
    trigger = data.get("trigger") or {}
    what = trigger.get("rule") or trigger.get("requestedBy") or trigger.get("type", "")
    return (
        f"{event.get('type')} {event.get('subject')} ({data.get('kind')}, {what}): "
        f"{counts.get('succeeded', 0)} succeeded, {counts.get('failed', 0)} failed, "
        f"{counts.get('cancelled', 0)} cancelled of {counts.get('total', 0)}, {data.get('bytes', 0)} bytes"
    )


def server(port: int, secret: Secret, out: TextIO = sys.stdout, show_json: bool = False) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            ok = length <= MAX_BODY and verified(secret, self.headers, body)
            self.send_response(204 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if not ok:
                print("refused a delivery: bad or old signature", file=out, flush=True)
                return
            event = json.loads(body)
            print(line(event), file=out, flush=True)
            if show_json:
                print(json.dumps(event, indent=2), file=out, flush=True)

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret", required=True, help="the webhook's secret (whsec_ and base64)")
    parser.add_argument("--json", action="store_true", help="print each event in full")
    args = parser.parse_args(argv)
    httpd = server(args.port, Secret(args.secret), show_json=args.json)
    print(f"receiving run events on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
