"""A webhook receiver on loopback, for tests and benchmarks: a tiny HTTP server in a thread that records
every POST (headers, body, arrival time) and answers the next scripted status (then 200); with ``hang``
set it holds every request open until closed (or ``hang_s`` has passed)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at_s: float

    @property
    def doc(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    hang_s: float = 120.0
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(dict(self.headers.items()), body, time.time()))
                if receiver.hang:
                    receiver.released.wait(receiver.hang_s)
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
