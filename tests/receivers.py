"""Real receivers for notification tests, all on 127.0.0.1: an HTTP endpoint and SMTP servers.

Plain context managers (not only pytest fixtures) so any test file can use them::

    from receivers import Reply, http_receiver, smtp_server, self_signed_cert, silent_tcp_server

    with http_receiver([Reply(429, headers={"Retry-After": "1"}), 500]) as hook:
        ...  # POST to hook.url + "/anything"; hook.requests records every request

    with smtp_server(cert=self_signed_cert(tmp_path)) as smtp:
        ...  # STARTTLS + AUTH (smtp.user / smtp.password); smtp.messages records what was accepted

Everything started here is stopped (threads joined, sockets closed) when its ``with`` block ends.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.message
import email.policy
import http.server
import importlib.util
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ports import closed_port, free_port

__all__ = [
    "HttpReceiver",
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "SmtpServer",
    "TlsCert",
    "closed_port",
    "free_port",
    "http_receiver",
    "self_signed_cert",
    "silent_tcp_server",
    "smtp_server",
]

LOOPBACK = "127.0.0.1"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``delay`` sleeps before answering (to test client timeouts)."""

    status: int = 200
    body: bytes | str = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; HTTP header names are case-insensitive
    body: bytes
    at: float  # time.monotonic() when the body had been read
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A threaded HTTP server that records every request and answers from a script.

    ``script(...)`` queues replies (``Reply`` or a bare status); once the queue is empty every request
    gets ``default``. Answers close the connection (HTTP/1.0), so no keep-alive thread outlives a test.
    """

    def __init__(self, default: Reply = Reply()) -> None:
        self.default = default
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self._requests: list[RecordedRequest] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a stuck client must not pin a handler thread forever

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = receiver._next()
                receiver._record(RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    status=reply.status,
                ))
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                # The client may have given up (timeout tests): nothing to report then.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        # Join handler threads on close instead of leaving daemons behind.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-receiver", daemon=True
        )

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def script(self, *replies: Reply | int) -> None:
        with self._lock:
            self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def _next(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The first ``count`` requests, waiting for them to arrive."""
        wait_until(lambda: len(self.requests) >= count, timeout, f"{count} request(s)")
        return self.requests[:count]


@contextlib.contextmanager
def http_receiver(replies: Iterable[Reply | int] = (), default: Reply = Reply()) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(default)
    receiver.script(*replies)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.close()


@contextlib.contextmanager
def silent_tcp_server() -> Iterator[tuple[str, int]]:
    """A listener that completes TCP handshakes and then never says a word (the kernel accepts into
    the backlog; nothing reads or writes). Yields ``(host, port)``."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(8)
        yield LOOPBACK, int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsCert:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1``."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the peer against exactly this certificate (host name checks stay on)."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed_cert(directory: Path) -> TlsCert:
    """Write ``cert.pem`` and ``key.pem`` into ``directory`` (``cryptography`` if installed, else openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        _cert_with_cryptography(cert, key)
    else:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return TlsCert(cert, key)


def _cert_with_cryptography(cert_path: Path, key_path: Path) -> None:  # pragma: no cover - not in the venv today
    import datetime
    import ipaddress

    from cryptography import x509  # type: ignore[import-not-found]
    from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found]
    from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found]
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the user that authenticated, if any

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class RecordingHandler:
    """aiosmtpd handler: accepts and records messages; can be told to refuse recipients or DATA."""

    def __init__(self, *, implicit_tls: bool) -> None:
        self.messages: list[ReceivedMail] = []
        self.refuse_rcpt: dict[str, str] = {}  # address → reply, e.g. "550 5.1.1 no such user"
        self.data_reply: str | None = None  # e.g. "451 4.3.0 try again later"
        self._implicit_tls = implicit_tls
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        auth = session.auth_data
        data = envelope.original_content or b""
        with self._lock:
            self.messages.append(ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=data if isinstance(data, bytes) else data.encode(),
                tls=self._implicit_tls or session.ssl is not None,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            ))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    cert: TlsCert | None
    user: str
    password: str

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.handler._lock:
            return list(self.handler.messages)

    def client_context(self) -> ssl.SSLContext:
        assert self.cert is not None, "this server has no TLS"
        return self.cert.client_context()


@contextlib.contextmanager
def smtp_server(
    *,
    security: Literal["starttls", "tls", "none"] = "starttls",
    cert: TlsCert | None = None,
    auth: bool = True,
    user: str = "alerts@example.org",
    password: str = "correct horse battery staple",
    echo_auth: bool = False,
    exclude_auth: Iterable[str] = (),
) -> Iterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1 that records accepted messages.

    ``starttls`` offers STARTTLS and requires it before anything but EHLO/NOOP/QUIT; ``tls`` is
    implicit TLS (SMTPS); ``none`` is plain text (then no AUTH). With ``auth``, LOGIN and PLAIN
    check ``user``/``password``, and mail is refused until authenticated. ``echo_auth``: a failed
    login is refused with a reply that quotes the client's last AUTH line back (the base64 of
    ``\0user\0password`` for PLAIN, of the password for LOGIN), as some servers do; ``exclude_auth``
    drops mechanisms (``["LOGIN"]``) from what the server offers.
    """
    if security != "none" and cert is None:
        raise ValueError("TLS needs a cert: self_signed_cert(tmp_path)")
    handler = RecordingHandler(implicit_tls=security == "tls")

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
        if not ok and echo_auth and isinstance(data, LoginPassword):
            sent = b"\0" + data.login + b"\0" + data.password if mechanism == "PLAIN" else data.password
            echoed = f"535 5.7.8 authentication failed for {base64.b64encode(sent).decode()}"
            return AuthResult(success=False, handled=False, message=echoed)
        # handled=False on failure lets aiosmtpd answer its standard "535 5.7.8 credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    options: dict[str, Any] = {}
    if security == "starttls":
        assert cert is not None
        options |= {"tls_context": cert.server_context(), "require_starttls": True}
    elif security == "tls":
        assert cert is not None
        options["ssl_context"] = cert.server_context()
    if auth and security != "none":
        options["authenticator"] = authenticator
        options["auth_exclude_mechanism"] = list(exclude_auth)
        options["auth_required"] = True
        # aiosmtpd only counts STARTTLS as TLS, so over implicit TLS it would refuse AUTH with
        # "538 Encryption required" (aio-libs/aiosmtpd#274, #281): the transport *is* encrypted here.
        # auth_required=True with auth_require_tls=False would warn (UserWarning), so keep
        # auth_require_tls on for STARTTLS and drop only the redundant check for SMTPS.
        options["auth_require_tls"] = security == "starttls"
        if security == "tls":
            options["auth_required"] = False
    controller = Controller(
        handler,
        hostname=LOOPBACK,
        port=free_port(),  # the Controller's readiness probe connects to `port`, so 0 would not do
        server_hostname="smtp.test",  # skips socket.getfqdn() for the banner
        ready_timeout=10,
        **options,
    )
    controller.start()
    try:
        yield SmtpServer(LOOPBACK, controller.port, handler, cert, user, password)
    finally:
        controller.stop()
