"""Slack incoming webhooks: one Block Kit message per alert.

Slack answers ``200 ok`` on success, ``429`` with ``Retry-After`` when a webhook posts faster than
about one message a second, ``400 invalid_payload`` (and friends) for a message it will never accept,
``403 invalid_token`` / ``404 no_service`` / ``410 channel_is_archived`` for a webhook that is gone.
The mapping to ``DeliveryError`` is the one in ``tbhub.adapters.notifiers.webhook``: a 400 fails that
one message (``UndeliverableMessage``), a 403, 404 or 410 the channel.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tbhub.adapters.notifiers.message import facts, format_time, render_text
from tbhub.adapters.notifiers.webhook import DEFAULT_TIMEOUT, USER_AGENT, HttpNotifier, message_bytes
from tbhub.core.models import Alert, RunStatus

__all__ = ["STATUS_EMOJI", "SlackNotifier"]

STATUS_EMOJI = {
    RunStatus.DIVERGED: ":rotating_light:",
    RunStatus.STALLED: ":hourglass:",
    RunStatus.FINISHED: ":checkered_flag:",
}

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks): beyond them Slack answers
# 400 invalid_blocks, which would look like a permanent failure of the whole channel.
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
_FIELDS_MAX = 10
_URL_MAX = 3000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> str:
    """Slack's three control characters; everything else in mrkdwn is literal enough."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _linkable(url: str | None) -> str | None:
    # A malformed button URL makes Slack reject the whole message (invalid_blocks): drop the
    # button instead, the text fallback still carries the link.
    if url and url.startswith(("http://", "https://")) and len(url) <= _URL_MAX:
        return url
    return None


class SlackNotifier(HttpNotifier):
    """Post each alert to a Slack incoming webhook as Block Kit ``blocks`` plus a ``text`` fallback.

    Invariants: ``send`` returns only after Slack's 2xx. ``DeliveryError`` is transient for 429
    (``retry_after`` from ``Retry-After``, else 1 s), 5xx, timeouts and connection errors; permanent
    for any other 4xx (the body, e.g. ``invalid_payload``, is quoted) and redirects, and of those a
    400 is ``UndeliverableMessage`` (this message, not the channel). The webhook
    URL is the credential: ``repr()`` and messages show only ``hooks.slack.com/…``.
    """

    kind = "slack"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        hub_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(name, url, timeout=timeout, client=client)
        self.hub_url = hub_url

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The message: header, message + fields, a TensorBoard button, a context line; ``text`` fallback."""
        emoji = STATUS_EMOJI.get(alert.status, ":information_source:")
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(f"{emoji} {alert.title}", _HEADER_MAX), "emoji": True},
            },
        ]
        text = _mrkdwn(alert.message.strip() or alert.status.value)
        section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX)}}
        fields = [
            {"type": "mrkdwn", "text": _cut(f"*{_mrkdwn(f.label)}*\n{_mrkdwn(f.value)}", _FIELD_MAX)}
            for f in facts(alert)[:_FIELDS_MAX]
        ]
        if fields:
            section["fields"] = fields
        blocks.append(section)
        button_url = _linkable(alert.url)
        if button_url:
            blocks.append({
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in TensorBoard"},
                    "url": button_url,
                    "action_id": "open_tensorboard",
                }],
            })
        where = f"endpoint *{_mrkdwn(alert.endpoint)}* · {format_time(alert.at)}"
        hub = _linkable(self.hub_url)
        if hub:
            where += f" · <{hub}|tbhub>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": where}]})
        # ``text`` is what notifications and screen readers show; Slack requires it next to blocks.
        return {"text": _cut(_mrkdwn(render_text(alert)), _SECTION_MAX), "blocks": blocks}

    def send(self, alert: Alert) -> None:
        body = message_bytes(self.label, lambda: json.dumps(self.payload(alert), ensure_ascii=False).encode())
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        self._post(body, headers)
