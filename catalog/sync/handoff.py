"""``catalog index`` while ``catalog watch`` runs: the path is handed to the watcher, which adds it as a
root, indexes it with its own pool, watches it from then on, and answers with its report.

The watcher listens on a Unix socket named after the catalogue (Linux: in the abstract namespace, so no
file is left behind however the watcher ends; elsewhere a socket file beside the writer lock). One
request per connection: a JSON line ``{"paths": [...], "methods": [...] | null}``; the answer is one
JSON line, the index report (``IndexReport.as_dict``) or ``{"error": "..."}``. Only the writer lock's
holder listens, so a second writer never writes: it asks the one that does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import UsageError
from catalog.lock import lock_path

#: Longest wait for the watcher's answer (it indexes the whole path first); a client can be interrupted.
ANSWER_WAIT = 24 * 3600.0


def address(url: str) -> str | bytes:
    """Where the watcher of the catalogue at ``url`` listens."""
    if sys.platform.startswith("linux"):
        digest = hashlib.sha256(str(lock_path(url).resolve()).encode()).hexdigest()[:24]
        return b"\0catalog-watch-" + digest.encode()
    return str(lock_path(url).with_suffix(".sock"))


@dataclass
class Request:
    paths: list[str]
    methods: list[str] | None
    answer: dict[str, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


class Listener:
    """The watcher's side: accepts requests in a thread and queues them for the watcher's loop, which
    calls :meth:`serve` between its steps (the loop is the only writer)."""

    def __init__(self, url: str, wake: Callable[[], None]):
        self.requests: queue.Queue[Request] = queue.Queue()
        self.wake = wake
        self.address = address(url)
        if isinstance(self.address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.address)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._accept, name="catalog-handoff", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                line = conn.makefile("rb").readline(1 << 20)
                data = json.loads(line)
                request = Request([str(p) for p in data["paths"]], data.get("methods"))
            except (OSError, ValueError, KeyError, TypeError):
                return
            self.requests.put(request)
            self.wake()
            request.done.wait()
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(request.answer).encode() + b"\n")

    def serve(self, handle: Callable[[Request], dict[str, Any]]) -> None:
        """Answer the queued requests (in the watcher's loop)."""
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            try:
                request.answer = handle(request)
            except Exception as exc:  # noqa: BLE001 - the client gets the reason; the watcher goes on
                request.answer = {"error": " ".join(str(exc).split()) or type(exc).__name__}
                if isinstance(exc, UsageError):  # the client refuses as it would have itself (exit 2)
                    request.answer["usage"] = True
            finally:
                request.done.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if isinstance(self.address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
        while True:  # nobody will answer these now
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                break
            request.answer = {"error": "catalog watch stopped before it got to this path"}
            request.done.set()


def hand_over(url: str, paths: list[str], methods: list[str] | None) -> dict[str, Any] | None:
    """Ask the running watcher to index ``paths``: its report, or None when no watcher listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address(url))
    except OSError:
        sock.close()
        return None
    with sock:
        sock.settimeout(ANSWER_WAIT)
        sock.sendall(json.dumps({"paths": paths, "methods": methods}).encode() + b"\n")
        line = sock.makefile("rb").readline()
    if not line:
        return {"error": "catalog watch stopped before it answered"}
    answer: dict[str, Any] = json.loads(line)
    return answer
