"""The kernel's end of the device faces' Unix sockets: one thread serving all of them.

Each face says hello once it serves; after that the kernel pushes register words,
identity and mute changes to it, and answers its write and login requests with
`handle`. A face whose socket closes while the run goes on is listed in `died`.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.errors import BackendError


class FaceLinks:
    """The kernel's end of the faces' Unix sockets: one thread serving all of them."""

    def __init__(self, path: Path, handle: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self.handle = handle
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(path))
        self.listener.listen(1024)
        self.conns: dict[str, socket.socket] = {}
        self.pids: dict[str, int] = {}
        self.died: dict[str, int] = {}
        self.ready = threading.Condition()
        self._stop = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="face-links", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        names: dict[socket.socket, str] = {}
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    conn, _ = self.listener.accept()
                    self._selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._selector.unregister(sock)
                    sock.close()
                    name = names.pop(sock, "")
                    if name and not self._stop:
                        self.died[name] = self.pids.get(name, 0)
                    continue
                message = json.loads(data)
                if "hello" in message:
                    name = str(message["hello"])
                    names[sock] = name
                    sock.setblocking(False)
                    with self.ready:
                        self.conns[name] = sock
                        self.pids[name] = int(message.get("pid", 0))
                        self.ready.notify_all()
                    continue
                reply = self.handle(names.get(sock, ""), message)
                self._send(sock, {"id": message.get("id"), **reply})

    def wait_for(self, names: set[str], timeout: float) -> None:
        deadline = time.time() + timeout
        with self.ready:
            while not names <= set(self.conns):
                left = deadline - time.time()
                if left <= 0:
                    missing = sorted(names - set(self.conns))
                    raise BackendError(
                        f"device faces did not start within {timeout:g} s: {missing[:5]}"
                    )
                self.ready.wait(left)

    def push(self, name: str, message: dict[str, Any]) -> bool:
        """Send without waiting; False if the face's socket is full or gone."""
        sock = self.conns.get(name)
        return sock is not None and self._send(sock, message)

    @staticmethod
    def _send(sock: socket.socket, message: dict[str, Any]) -> bool:
        try:
            sock.send(json.dumps(message, separators=(",", ":")).encode())
        except OSError:  # BlockingIOError included: the caller sends again later
            return False
        return True

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)
        for sock in self.conns.values():
            sock.close()
        self.listener.close()
        self._selector.close()
