"""The failure of one message, as opposed to the failure of a channel.

``DeliveryError(permanent=True)`` says the *channel* is broken (a URL that is gone, credentials that
are refused): the alert engine disables it until someone fixes it. ``UndeliverableMessage`` says this
*alert* can never go out through the channel as it is, while the channel itself works: the receiver
refused this document, or its content (a run name, say) cannot be encoded. The engine records that
one alert as failed and carries on with the next; it never disables the channel for it.
"""

from __future__ import annotations

from tbhub.errors import DeliveryError

__all__ = ["UndeliverableMessage"]


class UndeliverableMessage(DeliveryError):
    """This alert cannot be delivered through this channel; the channel is fine (see the module docstring).

    ``permanent`` is true (retrying the same message cannot help), so code that knows only
    ``DeliveryError`` still does not retry it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
