"""Email over SMTP: one multipart message (text/plain + text/html) per alert.

How failures map to ``DeliveryError``:

=============================================  =================================================
connection refused, DNS, resets, timeouts,     transient
server disconnected, TLS errors other than
certificate verification
SMTPAuthenticationError (535 ...)              permanent: the credentials are wrong
certificate verification failed                permanent: someone must fix the cert or the host
server lacks STARTTLS or AUTH                  permanent: never downgraded to plain text
SMTPRecipientsRefused                          permanent; transient only if every refusal was 4xx
other replies (MAIL FROM, DATA, greeting ...)  by code: 5xx permanent, 4xx transient
=============================================  =================================================
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Literal, get_args

from tbhub.adapters.notifiers.failures import UndeliverableMessage
from tbhub.adapters.notifiers.message import render_html, render_text, subject
from tbhub.adapters.notifiers.redaction import secret_forms
from tbhub.adapters.notifiers.webhook import DEFAULT_TIMEOUT, scrub
from tbhub.core.models import Alert
from tbhub.errors import ConfigError, DeliveryError

__all__ = ["EmailNotifier", "Security"]

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]


def _one_line(text: str) -> str:
    # Run names end up in headers; a CR/LF there would be a header injection (and EmailMessage refuses it).
    return " ".join(text.split())


class EmailNotifier:
    """Mail each alert to ``to`` through an SMTP server.

    ``security``: ``"starttls"`` (submission, usually port 587; fails permanently if the server does
    not offer STARTTLS rather than sending in clear), ``"tls"`` (implicit TLS, usually port 465) or
    ``"none"`` (a local relay; no login allowed then, so a password never crosses the wire in clear).
    ``ssl_context`` defaults to ``ssl.create_default_context()`` (verifies certificate and host name).

    Invariants: ``send`` returns once the server accepted the message for at least one recipient
    (refused ones are logged). Each network step (connect, TLS handshake, every command) is bounded
    by ``timeout``; a server that accepts but never greets fails after ``timeout``. The connection
    is always closed. Permanent vs transient: see the module table. The password never appears in
    ``repr()``, messages or logs, in any encoding a server may quote it back in (``secret_forms``).
    An alert whose content cannot be put into a message fails alone (``UndeliverableMessage``).
    """

    kind = "email"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        sender: str,
        to: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        security: Security = "starttls",
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        where = f"email {name!r}"
        if security not in get_args(Security):
            raise ConfigError(f"{where}: security must be one of starttls, tls, none")
        # A bare string is a Sequence[str] too: one address, not one per character.
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients or not all(r.strip() for r in recipients):
            raise ConfigError(f"{where}: at least one recipient is needed")
        if password is not None and not username:
            raise ConfigError(f"{where}: a password needs a username")
        if username and security == "none":
            raise ConfigError(f"{where}: refusing to log in over an unencrypted connection; use starttls or tls")
        if timeout <= 0:
            raise ConfigError(f"{where}: timeout must be positive")
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.to = tuple(recipients)
        self.username = username
        self._password = password
        self._hidden = secret_forms(password, user=username) if password else []
        self.security: Security = security
        self.timeout = timeout
        self._ssl_context = ssl_context
        # make_msgid() would otherwise call socket.getfqdn(), a DNS lookup without a timeout.
        self._msgid_domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "tbhub.invalid"

    def __repr__(self) -> str:
        auth = ", login" if self.username else ""
        return (
            f"EmailNotifier(name={self.name!r}, server={self.host}:{self.port}, security={self.security!r}, "
            f"to={list(self.to)!r}{auth})"
        )

    @property
    def label(self) -> str:
        """How error messages name this channel: safe to show."""
        return f"email {self.name!r} ({self.host}:{self.port})"

    def message(self, alert: Alert) -> EmailMessage:
        """The email for ``alert``: subject ``[tbhub] endpoint/dataset/run status``, text and HTML parts."""
        msg = EmailMessage()
        msg["Subject"] = _one_line(subject(alert))
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(domain=self._msgid_domain)
        # RFC 3834: keeps vacation responders from answering a robot.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Tbhub-Alert-Key"] = _one_line(alert.key)
        msg.set_content(render_text(alert))
        msg.add_alternative(render_html(alert), subtype="html")
        return msg

    def send(self, alert: Alert) -> None:
        try:
            msg = self.message(alert)
            msg.as_bytes()  # what send_message will do: fail here, before a word is said to the server
        except (UnicodeError, ValueError) as exc:
            raise UndeliverableMessage(f"{self.label}: this alert cannot be encoded: {type(exc).__name__}") from None
        smtp: smtplib.SMTP | None = None
        talking = False  # the server answers commands: worth a polite QUIT when done
        try:
            smtp = self._connect()
            talking = True
            if self.security == "starttls":
                # Raises SMTPNotSupportedError when not offered: we never fall back to clear text.
                smtp.starttls(context=self._context())
                smtp.ehlo()  # RFC 3207: what the server offered before TLS no longer counts
            if self.username:
                smtp.login(self.username, self._password or "")
            refused = smtp.send_message(msg, to_addrs=list(self.to))
        except smtplib.SMTPResponseException as exc:
            raise self._failure(exc) from None
        except (smtplib.SMTPException, OSError) as exc:
            talking = isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPNotSupportedError)
            # ``from None``: smtplib's exceptions and their context may quote the conversation.
            raise self._failure(exc) from None
        finally:
            if smtp is not None:
                self._close(smtp, polite=talking)
        if refused:
            log.warning("%s: delivered, but the server refused %s", self.label, ", ".join(sorted(refused)))

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _close(self, smtp: smtplib.SMTP, *, polite: bool) -> None:
        # QUIT only on a live conversation: on a dead or silent one it would wait another timeout.
        if polite:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        smtp.close()

    def _said(self, reply: bytes | str) -> str:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return scrub(text, self._hidden)

    def _failure(self, exc: BaseException) -> DeliveryError:
        """The ``DeliveryError`` for ``exc``: see the module table."""
        label = self.label
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            said = self._said(exc.smtp_error)
            return DeliveryError(f"{label}: login rejected ({exc.smtp_code} {said})", permanent=True)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = sorted({code for code, _ in exc.recipients.values()})
            permanent = any(code >= 500 for code in codes) or not codes
            shown = ", ".join(str(c) for c in codes)
            return DeliveryError(f"{label}: every recipient refused ({shown})", permanent=permanent)
        if isinstance(exc, smtplib.SMTPResponseException):
            code = exc.smtp_code
            said = self._said(exc.smtp_error)
            return DeliveryError(f"{label}: server said {code} {said}", permanent=500 <= code < 600)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if isinstance(exc.__context__, TimeoutError):
                return DeliveryError(f"{label}: no answer within {self.timeout:g}s")
            return DeliveryError(f"{label}: server closed the connection")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return DeliveryError(f"{label}: {self._said(str(exc))}", permanent=True)
        if isinstance(exc, smtplib.SMTPException):
            # e.g. "No suitable authentication method found": a configuration mismatch.
            return DeliveryError(f"{label}: {self._said(str(exc))}", permanent=True)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DeliveryError(f"{label}: certificate verification failed ({exc.verify_message})", permanent=True)
        if isinstance(exc, TimeoutError):
            return DeliveryError(f"{label}: no answer within {self.timeout:g}s")
        if isinstance(exc, ConnectionRefusedError):
            return DeliveryError(f"{label}: connection refused")
        return DeliveryError(f"{label}: {type(exc).__name__}: {self._said(str(exc))}")
