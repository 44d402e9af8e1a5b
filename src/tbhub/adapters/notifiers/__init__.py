"""Notification channels: each implements ``tbhub.core.ports.Notifier``.

All are synchronous (the alert engine calls them from a worker thread), bound every network step by
a timeout, raise ``tbhub.errors.DeliveryError`` (``permanent`` or transient, with ``retry_after``
when the receiver asked for a pause; ``UndeliverableMessage`` when only this alert cannot go out)
and keep their secrets out of ``repr()``, messages and logs.
"""

from __future__ import annotations

from tbhub.adapters.notifiers.email import EmailNotifier
from tbhub.adapters.notifiers.failures import UndeliverableMessage
from tbhub.adapters.notifiers.slack import SlackNotifier
from tbhub.adapters.notifiers.webhook import WebhookNotifier

__all__ = ["EmailNotifier", "SlackNotifier", "UndeliverableMessage", "WebhookNotifier"]
