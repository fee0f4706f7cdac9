"""The HTTP and telnet logins a device face serves, and the blocking clients that log in to them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import ipaddress
import logging
import re
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlencode

from twin.devices.base import Device
from twin.errors import BackendError

log = logging.getLogger(__name__)

MAX_LINE = 256  # bytes of one telnet line; a longer one is hostile and drops the client
MAX_HEAD = 8 * 1024  # bytes of an HTTP request line and headers
MAX_BODY = 8 * 1024
MAX_BACKLOG = 256 * 1024  # unsent bytes before a client that does not read is dropped
MAX_FAILURES = 3  # failed telnet logins before the device hangs up
MAX_REPLY = 64 * 1024  # bytes a client reads before deciding the peer is no login service
IAC, DONT, DO, WONT, WILL, SB, SE, ECHO = 255, 254, 253, 252, 251, 250, 240, 1
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized"}
REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (\S{1,2048}) HTTP/(1\.[01])")
HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*(.*?)[ \t]*")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
LOGIN_PROMPT = re.compile(rb"(?i)(login|username|user name): ?\Z")
PASSWORD_PROMPT = re.compile(rb"(?i)password: ?\Z")
# group 1 is a refusal, group 2 a shell prompt at the end of what has come
OUTCOME = re.compile(rb"(?i)(incorrect|denied|invalid|login: ?\Z)|([#$>%] ?\Z)")

Service = Literal["http", "telnet"]


@dataclass(frozen=True)
class LoginAttempt:
    """Credentials a client presented to one service, and where it presented them from."""

    service: Service
    username: str
    password: str
    peer_ip: str
    peer_port: int


# in production the simulation kernel answers, over a Unix socket: it holds credentials and lockouts
Check = Callable[[LoginAttempt], Awaitable[bool]]


@dataclass(frozen=True)
class Banner:
    """The product a device's login services claim to be."""

    vendor: str
    model: str
    firmware: str

    def __post_init__(self) -> None:
        for name in ("vendor", "model", "firmware"):
            value = getattr(self, name)
            if not value.isprintable() or '"' in value or "\\" in value:
                raise ValueError(f"banner {name} {value!r}: printable text without quotes only")
            if "incorrect" in value.lower():  # the flow meter would count it as a failed login
                raise ValueError(f"banner {name} {value!r} contains 'incorrect'")

    @classmethod
    def of(cls, device: Device) -> Banner:
        return cls(device.vendor, device.model, device.firmware)

    @property
    def realm(self) -> str:
        return f"{self.vendor} {self.model}"

    @property
    def greeting(self) -> bytes:
        return f"{self.realm} (firmware {self.firmware})\r\n\r\nlogin: ".encode()


class _Drop(Exception):
    """The client misbehaved beyond an answer: abort its connection."""


class _BadRequest(Exception):
    """An HTTP request that gets 400 and a closed connection."""


def _text(raw: bytes) -> str:
    """UTF-8 if it is, else Latin-1: whatever bytes a client sends reach the check."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Telnet:
    """Separates a telnet byte stream into data and option requests (RFC 854, 855)."""

    def __init__(self) -> None:
        self.state = 0  # 0 data, 1 after IAC, 2 option byte due, 3 in SB, 4 IAC in SB
        self.verb = 0

    def feed(self, chunk: bytes) -> tuple[bytes, list[tuple[int, int]]]:
        if self.state == 0 and IAC not in chunk:
            return chunk, []
        data, requests = bytearray(), []
        for byte in chunk:
            state = self.state
            if state == 0:
                if byte == IAC:
                    self.state = 1
                else:
                    data.append(byte)
            elif state == 1:
                self.verb = byte
                self.state = 2 if byte in (WILL, WONT, DO, DONT) else 3 if byte == SB else 0
                if byte == IAC:
                    data.append(IAC)  # IAC IAC is a literal 255
            elif state == 2:
                requests.append((self.verb, byte))
                self.state = 0
            else:
                self.state = (4 if byte == IAC else 3) if state == 3 else (0 if byte == SE else 3)
        return bytes(data), requests


class _Lines:
    """A telnet client's lines, ended by CR LF, LF or CR NUL, with its negotiation taken out."""

    def __init__(self, reader: asyncio.StreamReader, idle_timeout: float) -> None:
        self.reader, self.idle_timeout = reader, idle_timeout
        self.telnet = _Telnet()
        self.partial = bytearray()
        self.ready: list[bytes] = []
        self.after_cr = False

    async def next(self) -> str | None:
        """The next line; None when the client closes or stays silent for the idle timeout."""
        try:
            return await asyncio.wait_for(self._next(), self.idle_timeout)
        except TimeoutError:
            return None

    async def _next(self) -> str | None:
        while not self.ready:
            chunk = await self.reader.read(4096)
            if not chunk:
                return None
            for byte in self.telnet.feed(chunk)[0]:
                if self.after_cr:
                    self.after_cr = False
                    if byte in (0, 10):
                        continue
                if byte in (10, 13):
                    self.ready.append(bytes(self.partial))
                    self.partial.clear()
                    self.after_cr = byte == 13
                elif len(self.partial) < MAX_LINE:
                    self.partial.append(byte)
                else:
                    raise _Drop(f"telnet line over {MAX_LINE} bytes")
        return _text(self.ready.pop(0))


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request; None if the client closed between requests, _BadRequest if bad."""
    lines: list[bytes] = []
    size = 0
    while not lines or lines[-1]:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(f"header block over {MAX_HEAD} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if lines or exc.partial:
                raise _BadRequest("connection closed inside a request") from None
            return None
        size += len(line)
        if size > MAX_HEAD:
            raise _BadRequest(f"header block over {MAX_HEAD} bytes")
        if lines or line.strip():  # blank lines before a request are tolerated (RFC 9112 2.2)
            lines.append(line.rstrip(b"\r\n"))
    start = REQUEST_LINE.fullmatch(lines[0])
    if start is None:
        raise _BadRequest(f"request line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:-1]:
        header = HEADER.fullmatch(line)
        if header is None:
            raise _BadRequest(f"header line {line[:60]!r}")
        name = header[1].decode().lower()
        if name in headers and name in ("content-length", "authorization"):
            raise _BadRequest(f"repeated {name}")
        headers[name] = header[2].decode("latin-1")
    method, length = start[1].decode(), headers.get("content-length")
    if "transfer-encoding" in headers:
        raise _BadRequest("chunked bodies are not accepted")
    if length is None and method == "POST":
        raise _BadRequest("POST without Content-Length")
    if length is not None and not (re.fullmatch("[0-9]{1,6}", length) and int(length) <= MAX_BODY):
        raise _BadRequest(f"Content-Length {length[:20]!r}, at most {MAX_BODY}")
    body = await reader.readexactly(int(length)) if length else b""
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (start[3] == b"1.1" or "keep-alive" in connection)
    return _Request(method, start[2].decode("latin-1").split("?")[0], headers, body, keep)


@dataclass
class _Listener:
    """What the sessions of one listening socket share: banner, check, limits, and themselves."""

    service: Service
    banner: Banner
    check: Check
    idle_timeout: float
    max_connections: int
    sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)
    closing: bool = False

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing or len(self.sessions) >= self.max_connections:
            writer.transport.abort()  # a device's connection table is small; the rest are refused
            return
        task = asyncio.get_running_loop().create_task(self._session(reader, writer))
        self.sessions[task] = writer
        task.add_done_callback(self.sessions.pop)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ip, port = (writer.get_extra_info("peername") or ("", 0))[:2]
        serve = self._http if self.service == "http" else self._telnet
        try:
            await serve(reader, writer, ip, port)
        except _Drop as why:
            log.debug("%s login: dropped %s:%s: %s", self.service, ip, port, why)
            writer.transport.abort()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s login session with %s:%s failed", self.service, ip, port)
        finally:
            writer.close()

    def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():  # gone; and every write to a lost connection logs a warning
            raise ConnectionResetError("connection lost")
        writer.write(data)
        if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            raise _Drop(f"over {MAX_BACKLOG} bytes unread")

    async def _verdict(self, attempt: LoginAttempt) -> bool:
        """The check's answer: anything but True, an error or no answer in time refuses."""
        try:
            return await asyncio.wait_for(self.check(attempt), self.idle_timeout) is True
        except Exception:
            log.exception("login check of %s@%s failed", attempt.username, attempt.peer_ip)
            return False

    async def _telnet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str, port: int
    ) -> None:
        lines = _Lines(reader, self.idle_timeout)
        self._send(writer, self.banner.greeting)
        failures = 0
        while True:
            username = await lines.next()
            if username is None:
                return
            if not username:
                self._send(writer, b"login: ")
                continue
            # no echo while the password is typed, as a real device asks
            self._send(writer, bytes((IAC, WILL, ECHO)) + b"Password: ")
            password = await lines.next()
            if password is None:
                return
            self._send(writer, bytes((IAC, WONT, ECHO)))
            if await self._verdict(LoginAttempt("telnet", username, password, ip, port)):
                break
            failures += 1
            self._send(writer, b"\r\nLogin incorrect\r\n")
            if failures >= MAX_FAILURES:
                return
            self._send(writer, b"login: ")
        prompt = f"{self.banner.model} # ".encode()
        self._send(writer, b"\r\n" + prompt)
        while (command := await lines.next()) is not None:
            if command.strip() in ("exit", "logout"):
                return
            # never echo the command: it could carry a word the flow meter counts
            self._send(writer, (b"-sh: command not found\r\n" if command.strip() else b"") + prompt)

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str, port: int
    ) -> None:
        keep = True
        while keep:
            try:
                request = await asyncio.wait_for(_read_request(reader), self.idle_timeout)
                if request is None:
                    return
                status = await self._answer(request, ip, port)
            except TimeoutError:
                return
            except _BadRequest as why:
                log.debug("HTTP login: bad request from %s:%s: %s", ip, port, why)
                self._send(writer, self._response(400, keep=False))
                return
            keep = request.keep_alive
            self._send(writer, self._response(status, keep=keep, head=request.method == "HEAD"))

    async def _answer(self, request: _Request, ip: str, port: int) -> int:
        """401 to a request without credentials; 200 or 401 as the check says to one with them."""
        if request.method == "POST" and request.path == "/login":
            try:
                form = parse_qs(_text(request.body), keep_blank_values=True, max_num_fields=16)
            except ValueError as exc:
                raise _BadRequest(f"form: {exc}") from None
            if "username" not in form or "password" not in form:
                raise _BadRequest("form without username and password")
            username, password = form["username"][0], form["password"][0]
        else:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "basic":
                return 401  # no credentials it understands: the challenge
            try:
                username, colon, password = _text(
                    base64.b64decode(token.strip(), validate=True)
                ).partition(":")
            except binascii.Error:
                raise _BadRequest("Authorization is not base64") from None
            if not colon:
                raise _BadRequest("Basic credentials without a colon")
        ok = await self._verdict(LoginAttempt("http", username, password, ip, port))
        return 200 if ok else 401

    def _response(self, status: int, *, keep: bool, head: bool = False) -> bytes:
        name = html.escape(self.banner.realm)
        body = f"<html><head><title>{name}</title></head><body><h1>{name}</h1>"
        if status == 200:
            body += (
                f"<p>Firmware {html.escape(self.banner.firmware)}</p><p>Status: running</p>"
                '<ul><li><a href="/network">Network</a></li><li><a href="/users">Users</a></li>'
                '<li><a href="/firmware">Firmware upgrade</a></li></ul>'
            )
        else:
            body += f"<p>{REASONS[status]}</p>"
        payload = (body + "</body></html>\n").encode()
        lines = [
            f"HTTP/1.1 {status} {REASONS[status]}",
            f"Server: {self.banner.vendor} Web Server",
            "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(payload)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep else 'close'}",
        ]
        if status == 401:
            lines.append(f'WWW-Authenticate: Basic realm="{self.banner.realm}"')
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else payload)


_LISTENERS: weakref.WeakKeyDictionary[asyncio.Server, _Listener] = weakref.WeakKeyDictionary()


async def _serve(service: Service, host: str, port: int, listener: _Listener) -> asyncio.Server:
    ipaddress.ip_address(host)  # a literal address: one socket, one port, even for port 0
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} outside 0..65535")
    if listener.idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be positive, got {listener.idle_timeout}")
    if listener.max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, got {listener.max_connections}")

    def protocol() -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=MAX_HEAD), listener.accept)

    try:
        server = await asyncio.get_running_loop().create_server(
            protocol, host, port, reuse_address=True
        )
    except OSError as exc:
        raise BackendError(f"cannot serve {service} logins on {host}:{port}: {exc}") from exc
    _LISTENERS[server] = listener
    return server


async def serve_http(
    host: str,
    port: int,
    banner: Banner,
    check: Check,
    *,
    idle_timeout: float = 30.0,
    max_connections: int = 16,
) -> asyncio.Server:
    """Serve HTTP logins on the running loop: Basic on any path, or a form POSTed to /login."""
    listener = _Listener("http", banner, check, idle_timeout, max_connections)
    return await _serve("http", host, port, listener)


async def serve_telnet(
    host: str,
    port: int,
    banner: Banner,
    check: Check,
    *,
    idle_timeout: float = 30.0,
    max_connections: int = 16,
) -> asyncio.Server:
    """Serve telnet logins on the running loop: three failures and the device hangs up."""
    listener = _Listener("telnet", banner, check, idle_timeout, max_connections)
    return await _serve("telnet", host, port, listener)


async def close(server: asyncio.Server) -> None:
    """Stop listening and end every session the server accepted (Server.close leaves them)."""
    listener = _LISTENERS.pop(server, None)
    server.close()
    if listener is not None:
        listener.closing = True
        for task, writer in list(listener.sessions.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*listener.sessions, return_exceptions=True)
    for _ in range(3):  # aborted transports close their sockets a turn later
        await asyncio.sleep(0)
    await server.wait_closed()


# --- the client side ---------------------------------------------------------------------


def connect(
    host: str,
    port: int,
    *,
    timeout: float,
    sport: int | None = None,
    source: str | None = None,
) -> socket.socket:
    """A TCP connection to (host, port), from source port `sport` and address `source` if
    given (a host holding several addresses); BackendError if none."""
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    try:
        v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address") from None
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if sport is not None or source is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((source or ("::" if v6 else "0.0.0.0"), sport or 0))
        sock.connect((host, port))
    except BaseException as exc:
        sock.close()
        if not isinstance(exc, OSError):
            raise
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        else:
            reason = f"cannot connect{'' if sport is None else f' from port {sport}'}: {exc}"
        raise BackendError(f"{host}:{port}: {reason}") from exc
    return sock


class _Conversation:
    """Reading and writing one socket against a single deadline for the whole login."""

    def __init__(self, sock: socket.socket, where: str, timeout: float, started: float) -> None:
        self.sock, self.where, self.timeout = sock, where, timeout
        self.deadline = started + timeout
        self.telnet: _Telnet | None = None  # set to read a telnet stream
        self.received = bytearray()  # what the server sent; telnet negotiation taken out
        self.seen = 0  # how far `until` has matched

    def send(self, data: bytes) -> None:
        self.sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise BackendError(f"{self.where}: connection lost while sending: {exc}") from exc

    def recv(self, what: str) -> bool:
        """Read once more; False at the end of the stream."""
        try:
            self.sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(4096)
        except TimeoutError:
            raise BackendError(
                f"{self.where}: no answer within {self.timeout:g} s (waiting for {what})"
            ) from None
        except OSError as exc:
            raise BackendError(f"{self.where}: connection lost waiting for {what}: {exc}") from exc
        if chunk and self.telnet is not None:
            chunk, requests = self.telnet.feed(chunk)
            # refuse every option: the client is a plain network virtual terminal
            answer = [(IAC, WONT if v == DO else DONT, o) for v, o in requests if v in (DO, WILL)]
            if answer:
                self.send(bytes(b for triple in answer for b in triple))
            if not chunk:
                return True  # all negotiation: the stream goes on
        self.received += chunk
        if len(self.received) > MAX_REPLY:
            raise BackendError(f"{self.where}: over {MAX_REPLY} bytes without {what}")
        return bool(chunk)

    def until(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        while (match := pattern.search(self.received, self.seen)) is None:
            if not self.recv(what):
                got = bytes(self.received[self.seen :][:60])
                raise BackendError(f"{self.where}: closed before {what} (got {got!r})")
        self.seen = match.end()
        return match

    def finish(self) -> None:
        """Half-close and read to the end, briefly, so that neither side resets the connection."""
        self.deadline = min(self.deadline, time.monotonic() + 0.5)
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while self.recv("the end of the session"):
                pass
        except (BackendError, OSError):
            pass


def http_login(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    timeout: float = 2.0,
    sport: int | None = None,
    source: str | None = None,
    form: bool = False,
) -> bool:
    """Log in over HTTP with pre-emptive Basic credentials (or a form POSTed to /login).

    True for 200, False for 401 or 403: one request, so one status line either way.
    """
    if not form and ":" in username:
        raise ValueError(f"HTTP Basic cannot carry username {username!r}: it has a colon")
    if form:
        body = urlencode({"username": username, "password": password}).encode()
        head = (
            "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
    else:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        body, head = b"", f"GET / HTTP/1.1\r\nAuthorization: Basic {token}\r\n"
    request = f"{head}Host: {host}:{port}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    started = time.monotonic()
    with connect(host, port, timeout=timeout, sport=sport, source=source) as sock:
        talk = _Conversation(sock, f"HTTP {host}:{port}", timeout, started)
        talk.send(request.encode() + body)
        # a reply that does not start like HTTP ends the wait early
        while b"\r\n\r\n" not in talk.received and b"HTTP/".startswith(talk.received[:5]):
            if not talk.recv("an HTTP reply"):
                break
        status = STATUS_LINE.match(talk.received)
        if status is None:
            got = bytes(talk.received[:60])
            raise BackendError(f"HTTP {host}:{port}: not an HTTP reply (got {got!r})")
        talk.finish()
    if int(status[1]) not in (200, 401, 403):
        raise BackendError(f"HTTP {host}:{port}: unexpected status {int(status[1])}")
    return int(status[1]) == 200


def telnet_login(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    timeout: float = 2.0,
    sport: int | None = None,
    source: str | None = None,
) -> bool:
    """Log in over telnet: True at a shell prompt (and `exit` from it), False at a refusal."""
    for name, value in (("username", username), ("password", password)):
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"telnet {name} {value!r} contains a line break")
    started = time.monotonic()
    with connect(host, port, timeout=timeout, sport=sport, source=source) as sock:
        talk = _Conversation(sock, f"telnet {host}:{port}", timeout, started)
        talk.telnet = _Telnet()
        talk.until(LOGIN_PROMPT, "a login prompt")
        talk.send(username.encode() + b"\r\n")
        talk.until(PASSWORD_PROMPT, "a password prompt")
        talk.send(password.encode() + b"\r\n")
        accepted = talk.until(OUTCOME, "an answer to the password")[1] is None
        if accepted:
            talk.send(b"exit\r\n")
        talk.finish()
    return accepted
