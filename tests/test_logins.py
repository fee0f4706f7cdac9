"""HTTP and telnet login services and clients over real sockets on 127.0.0.1, hostile clients included."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from twin import logins
from twin.errors import BackendError
from twin.logins import Banner, LoginAttempt, http_login, telnet_login
from twin.network.pcapflows import AUTH_PATTERNS, HTTP, TELNET

HOST = "127.0.0.1"
BANNER = Banner("Acme Vision", "EyeCam 200", "2.1.7")
USER, PASSWORD = "admin", "s3cret"
IAC, DONT, DO, WONT, WILL, SB, SE, NOP = 255, 254, 253, 252, 251, 250, 240, 241
LOGIN = {"http": http_login, "telnet": telnet_login}


class Credentials:
    """The check a device's kernel would run: one right pair, every attempt recorded."""

    def __init__(self) -> None:
        self.attempts: list[LoginAttempt] = []

    async def __call__(self, attempt: LoginAttempt) -> bool:
        self.attempts.append(attempt)
        return (attempt.username, attempt.password) == (USER, PASSWORD)


class FaceLoop:
    """An asyncio loop in a thread of its own, as a device's face process runs one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="login-face")
        self.servers: list[asyncio.Server] = []
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(
        self,
        service: str,
        check: Callable[[LoginAttempt], Coroutine[Any, Any, bool]] | None = None,
        **options: Any,
    ) -> tuple[int, Credentials]:
        """Serve `service` on a kernel-chosen port; (port, the default check)."""
        credentials = Credentials()
        serve = logins.serve_http if service == "http" else logins.serve_telnet
        server = self.run(serve(HOST, 0, BANNER, check or credentials, **options))
        self.servers.append(server)
        return server.sockets[0].getsockname()[1], credentials

    def close(self) -> None:
        async def shut() -> None:
            for server in self.servers:
                await logins.close(server)

        try:
            self.run(shut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def face() -> Iterator[FaceLoop]:
    face = FaceLoop()
    try:
        yield face
    finally:
        face.close()


class Tap:
    """A client socket that keeps every byte it receives, as a packet capture would."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.received += data
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.fixture
def tapped(monkeypatch: pytest.MonkeyPatch) -> list[Tap]:
    """Every connection the login clients open from here on, with what it received."""
    real = logins.connect
    taps: list[Tap] = []

    def connect(*args: Any, **kwargs: Any) -> Tap:
        taps.append(Tap(real(*args, **kwargs)))
        return taps[-1]

    monkeypatch.setattr(logins, "connect", connect)
    return taps


def dial(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=3.0)


def read_until(sock: socket.socket, marker: bytes, limit: float = 3.0) -> bytes:
    data = b""
    deadline = time.monotonic() + limit
    while marker not in data:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}; got {data!r}")
        data += chunk
    return data


def read_to_end(sock: socket.socket, limit: float = 3.0) -> bytes:
    """Everything until the server closes (a reset counts as closing)."""
    data = b""
    deadline = time.monotonic() + limit
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- logging in ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_right_credentials_are_accepted_and_wrong_ones_refused(
    face: FaceLoop, service: str
) -> None:
    """The client reports what the check decided: True for the right pair, False for a wrong password or user."""
    port, _ = face.serve(service)
    login = LOGIN[service]
    assert login(HOST, port, USER, PASSWORD) is True
    assert login(HOST, port, USER, "wrong") is False
    assert login(HOST, port, "root", PASSWORD) is False


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_the_check_hears_service_credentials_and_the_client_5_tuple(
    face: FaceLoop, service: str
) -> None:
    """The kernel learns the service, the exact credentials (colons, spaces, UTF-8) and the source port the client bound."""
    port, credentials = face.serve(service)
    sport = free_port()
    LOGIN[service](HOST, port, "operator", "pa:ss wörd", sport=sport)
    assert credentials.attempts == [LoginAttempt(service, "operator", "pa:ss wörd", HOST, sport)]


def test_a_form_posted_to_login_is_checked_like_basic_credentials(face: FaceLoop) -> None:
    """A urlencoded form POSTed to /login is one check, its fields decoded."""
    port, credentials = face.serve("http")
    assert http_login(HOST, port, USER, PASSWORD, form=True) is True
    assert http_login(HOST, port, USER, "nope&x=1", form=True) is False
    assert [a.password for a in credentials.attempts] == [PASSWORD, "nope&x=1"]


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_a_slow_check_does_not_hold_up_other_clients(face: FaceLoop, service: str) -> None:
    """While one login waits on the kernel, another client logs in on the same loop."""
    entered, release = threading.Event(), asyncio.Event()

    async def kernel(attempt: LoginAttempt) -> bool:
        if attempt.username == "slow":
            entered.set()
            await release.wait()  # the kernel answers only after the fast client is done
        await asyncio.sleep(0.05)
        return attempt.password == PASSWORD

    port, _ = face.serve(service, kernel)
    results: list[bool] = []
    slow = threading.Thread(
        target=lambda: results.append(LOGIN[service](HOST, port, "slow", PASSWORD, timeout=5.0))
    )
    slow.start()
    try:
        assert entered.wait(3.0)
        assert LOGIN[service](HOST, port, USER, PASSWORD, timeout=1.0) is True
    finally:
        face.loop.call_soon_threadsafe(release.set)
        slow.join()
    assert results == [True]


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_a_check_that_raises_is_a_refusal_and_the_service_goes_on(
    face: FaceLoop, service: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A check that fails refuses that login, is logged, and the next client is served."""

    async def broken(attempt: LoginAttempt) -> bool:
        if attempt.username == "boom":
            raise OSError("kernel socket gone")
        return attempt.password == PASSWORD

    port, _ = face.serve(service, broken)
    assert LOGIN[service](HOST, port, "boom", PASSWORD) is False
    assert LOGIN[service](HOST, port, USER, PASSWORD) is True
    assert "kernel socket gone" in caplog.text


def test_http_keep_alive_answers_the_challenge_then_the_credentials(face: FaceLoop) -> None:
    """A browser-style challenge round-trip on one keep-alive connection asks the kernel once."""
    port, credentials = face.serve("http")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with dial(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: cam\r\n\r\n")
        challenge = read_until(sock, b"</html>\n")
        sock.sendall(f"GET /status HTTP/1.1\r\nAuthorization: Basic {token}\r\n\r\n".encode())
        page = read_until(sock, b"</html>\n")
    assert challenge.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b'WWW-Authenticate: Basic realm="Acme Vision EyeCam 200"' in challenge
    assert page.startswith(b"HTTP/1.1 200 OK\r\n") and b"EyeCam 200" in page
    assert len(credentials.attempts) == 1  # the challenge alone asks the kernel nothing


def test_telnet_option_negotiation_is_not_part_of_the_credentials(face: FaceLoop) -> None:
    """IAC commands, subnegotiation and CR NUL line ends are stripped before the check sees a line."""
    port, credentials = face.serve("telnet")
    naws = bytes((IAC, SB, 31, 0, 80, 0, 24, IAC, SE))
    with dial(port) as sock:
        read_until(sock, b"login: ")
        sock.sendall(bytes((IAC, DO, 1, IAC, WILL, 31)) + naws + b"adm" + bytes((IAC, NOP)))
        sock.sendall(b"in\r\0")
        read_until(sock, b"Password: ")
        sock.sendall(bytes((IAC, DO, 1)) + PASSWORD.encode() + b"\n")
        assert read_until(sock, b"# ").endswith(b"\r\nEyeCam 200 # ")
        sock.sendall(b"ls\r\nexit\r\n")
        assert b"command not found" in read_to_end(sock)  # exit ends the session
    assert [(a.username, a.password) for a in credentials.attempts] == [(USER, PASSWORD)]


def test_telnet_hangs_up_after_three_failures(face: FaceLoop) -> None:
    """Three wrong passwords on one connection: three refusals, then the device closes."""
    port, credentials = face.serve("telnet")
    with dial(port) as sock:
        received = read_until(sock, b"login: ")
        for n in range(3):
            sock.sendall(b"root\r\n")
            received += read_until(sock, b"Password: ")
            sock.sendall(f"guess{n}\r\n".encode())
            if n < 2:
                received += read_until(sock, b"login: ")
        received += read_to_end(sock)
    assert received.count(b"Login incorrect") == 3
    assert len(credentials.attempts) == 3


def test_banners_name_the_product_and_not_the_software_behind_it(face: FaceLoop) -> None:
    """Scanners see the vendor and model in the Server header, realm and telnet greeting, never Python."""
    http_port, _ = face.serve("http")
    telnet_port, _ = face.serve("telnet")
    with dial(http_port) as sock:
        sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
        head = read_to_end(sock)
    with dial(telnet_port) as sock:
        greeting = read_until(sock, b"login: ")
    assert b"Server: Acme Vision Web Server\r\n" in head
    assert b'realm="Acme Vision EyeCam 200"' in head
    assert greeting == b"Acme Vision EyeCam 200 (firmware 2.1.7)\r\n\r\nlogin: "
    for text in (head.lower(), greeting.lower()):
        assert b"python" not in text and b"asyncio" not in text


def test_a_banner_is_built_from_a_device_and_refuses_text_that_would_mislead() -> None:
    """Header injection and a name the flow meter would count as a failure are refused on creation."""
    device = SimpleNamespace(vendor="Hikvision", model="DS-2CD2042WD", firmware="5.4.5")
    assert Banner.of(device) == Banner("Hikvision", "DS-2CD2042WD", "5.4.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="printable"):
        Banner("Acme\r\nSet-Cookie: x", "m", "1")
    with pytest.raises(ValueError, match="incorrect"):
        Banner("Acme", "Incorrectly Named", "1")


# --- what the flow meter counts --------------------------------------------------------------


@pytest.mark.parametrize(("service", "kind"), [("http", HTTP), ("telnet", TELNET)])
def test_each_failed_login_is_exactly_one_auth_failure_on_the_wire(
    face: FaceLoop, tapped: list[Tap], service: str, kind: int
) -> None:
    """The pcap meter's pattern finds one failure per refused login and none for an accepted one."""
    port, _ = face.serve(service)
    for n in range(4):
        assert LOGIN[service](HOST, port, USER, f"wrong{n}") is False
    assert LOGIN[service](HOST, port, USER, PASSWORD) is True
    counts = [len(AUTH_PATTERNS[kind].findall(bytes(tap.received))) for tap in tapped]
    assert counts == [1, 1, 1, 1, 0]


def test_http_form_failures_are_one_auth_failure_each(face: FaceLoop, tapped: list[Tap]) -> None:
    """A refused form login is one 401 status line too."""
    port, _ = face.serve("http")
    http_login(HOST, port, USER, "x", form=True)
    http_login(HOST, port, USER, PASSWORD, form=True)
    assert [len(AUTH_PATTERNS[HTTP].findall(bytes(t.received))) for t in tapped] == [1, 0]


# --- hostile clients -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello, say
        b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n",
        b"POST /login HTTP/1.1\r\nContent-Length: 9000\r\n\r\n" + b"a" * 9000,
        b"GET / HTTP/1.1\r\nAuthorization: Basic !!!notbase64\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: cam\r\n\r\nusername=a&password=b",
        b"POST /login HTTP/1.1\r\nContent-Length: 3\r\n\r\nx=1",
        b"POST /login HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nab",
        b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=[
        "garbage",
        "huge-header",
        "huge-body",
        "bad-base64",
        "no-length",
        "no-fields",
        "odd-length",
        "chunked",
    ],
)
def test_a_bad_http_request_gets_400_and_the_connection_closed(
    face: FaceLoop, request_bytes: bytes
) -> None:
    """Malformed, oversized or unframed requests get 400, no check, a closed connection, and the service goes on."""
    port, credentials = face.serve("http")
    with dial(port) as sock:
        sock.sendall(request_bytes)
        reply = read_to_end(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert not credentials.attempts
    assert http_login(HOST, port, USER, PASSWORD) is True


def test_an_oversized_telnet_line_drops_that_client_only(face: FaceLoop) -> None:
    """A 300-byte line drops that client without a check; the next client logs in."""
    port, credentials = face.serve("telnet")
    with dial(port) as sock:
        read_until(sock, b"login: ")
        sock.sendall(b"A" * 300 + b"\r\n")
        assert b"Password" not in read_to_end(sock)
    assert not credentials.attempts
    assert telnet_login(HOST, port, USER, PASSWORD) is True


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_binary_garbage_does_not_stop_the_service(face: FaceLoop, service: str) -> None:
    """Random bytes, IAC included, neither crash nor stall the service."""
    port, _ = face.serve(service)
    noise = random.Random(7)
    for _ in range(5):
        # the server may hang up before taking it all
        with dial(port) as sock, contextlib.suppress(OSError):
            sock.sendall(noise.randbytes(20000))
    assert LOGIN[service](HOST, port, USER, PASSWORD) is True


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_a_silent_client_is_hung_up_on_after_the_idle_timeout(face: FaceLoop, service: str) -> None:
    """A client that connects and says nothing is closed after the idle timeout."""
    port, _ = face.serve(service, idle_timeout=0.2)
    with dial(port) as sock:
        start = time.monotonic()
        read_to_end(sock, limit=3.0)
        assert 0.15 < time.monotonic() - start < 1.5
    assert LOGIN[service](HOST, port, USER, PASSWORD) is True


def test_connections_over_the_limit_are_refused_and_a_freed_slot_serves_again(
    face: FaceLoop,
) -> None:
    """Past max_connections new clients are closed at once; a closed session frees its slot."""
    port, _ = face.serve("telnet", max_connections=2)
    first, second = dial(port), dial(port)
    try:
        read_until(first, b"login: ")
        read_until(second, b"login: ")
        with dial(port) as extra:
            assert read_to_end(extra) == b""
        with pytest.raises(BackendError, match=r"closed before a login prompt|connection lost"):
            telnet_login(HOST, port, USER, PASSWORD)
    finally:
        first.close()
    deadline = time.monotonic() + 2.0
    while True:  # the face notices the freed slot when the close arrives
        try:
            assert telnet_login(HOST, port, USER, PASSWORD) is True
            break
        except BackendError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    second.close()


def test_a_client_that_never_reads_is_dropped(face: FaceLoop) -> None:
    """Pipelining requests without reading the replies gets the client reset once 256 KiB back up."""
    port, _ = face.serve("http")
    pipelined = b"GET / HTTP/1.1\r\n\r\n" * 5000  # 1.4 MB of challenges to send back
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((HOST, port))
        sock.settimeout(5.0)
        reset, deadline = False, time.monotonic() + 10.0
        while not reset and time.monotonic() < deadline:  # until the kernel's buffers are full
            try:
                sock.sendall(pipelined)
            except (ConnectionResetError, BrokenPipeError):
                reset = True
            else:
                time.sleep(0.05)
                reset = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    assert reset, "the face kept a client that reads nothing"
    assert http_login(HOST, port, USER, PASSWORD) is True


# --- client errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_a_closed_port_is_a_backend_error_naming_it(service: str) -> None:
    """A refused connection is a BackendError naming host and port."""
    port = free_port()
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}: connection refused"):
        LOGIN[service](HOST, port, USER, PASSWORD)


@pytest.mark.parametrize("service", ["http", "telnet"])
def test_a_listener_that_never_answers_is_a_backend_error_after_the_timeout(service: str) -> None:
    """A peer that accepts but never speaks is a BackendError after about the timeout."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(4)  # the kernel completes handshakes; nobody ever answers
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"no answer within 0\.3 s"):
            LOGIN[service](HOST, port, USER, PASSWORD, timeout=0.3)
        assert time.monotonic() - start < 1.0


def test_a_reply_in_another_protocol_is_a_backend_error(face: FaceLoop) -> None:
    """Logging in to the wrong service is a BackendError, not a refusal."""
    telnet_port, _ = face.serve("telnet")
    http_port, _ = face.serve("http")
    with pytest.raises(BackendError, match="not an HTTP reply"):
        http_login(HOST, telnet_port, USER, PASSWORD)
    with pytest.raises(
        BackendError, match=r"no answer within 0.3 s \(waiting for a login prompt\)"
    ):
        telnet_login(HOST, http_port, USER, PASSWORD, timeout=0.3)
