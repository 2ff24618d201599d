"""Who is subscribed to what, so subscribe/unsubscribe answer like Attentive does.

A subscription is (channel, type) for one identifier: a phone means the TEXT channel, an email the EMAIL
channel (Attentive: "the email data point determines which email subscriptions a user has and the phone data
point determines which text subscriptions"). Subscribing reports ``NEWLY_CREATED`` or ``PREVIOUSLY_CREATED``;
unsubscribing ``NEWLY_UNSUBSCRIBED`` or ``PREVIOUSLY_UNSUBSCRIBED``. Response shapes follow the spec's
``AddSubscriptionsResponseDto`` / ``UnsubscribeSubscriptionsResponseDto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALL_TYPES = ("MARKETING", "TRANSACTIONAL", "CHECKOUT_ABANDONED")


def _channels(user: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    if user.get("phone"):
        out.append(("TEXT", str(user["phone"])))
    if user.get("email"):
        out.append(("EMAIL", str(user["email"]).lower()))
    return out


class Subscriptions:
    def __init__(self) -> None:
        self._active: set[tuple[str, str, str]] = set()  # (channel, identifier, type)

    def clear(self) -> None:
        self._active.clear()

    def subscribe(self, body: Mapping[str, Any]) -> dict[str, Any]:
        user = body.get("user") or {}
        # A sign-up unit's type isn't known here; API sign-up units are marketing unless the type is given.
        stype = str(body.get("subscriptionType") or "MARKETING")
        results = []
        for channel, ident in _channels(user):
            key = (channel, ident, stype)
            status = "PREVIOUSLY_CREATED" if key in self._active else "NEWLY_CREATED"
            self._active.add(key)
            results.append(
                {"subscription": {"type": stype, "channel": channel}, "subscriptionCreationStatus": status}
            )
        out: dict[str, Any] = {"user": dict(user), "subscriptionResponses": results}
        if body.get("externalIdentifiers"):
            out["externalIdentifiers"] = body["externalIdentifiers"]
        return out

    def unsubscribe(self, body: Mapping[str, Any]) -> dict[str, Any]:
        user = body.get("user") or {}
        wanted = body.get("subscriptions") or []
        results = []
        for channel, ident in _channels(user):
            if wanted:
                types = [
                    s.get("type") for s in wanted if s.get("channel", channel) == channel and s.get("type")
                ]
            else:  # no list: every subscription the user has on this channel (or marketing if none known)
                types = [t for t in ALL_TYPES if (channel, ident, t) in self._active] or ["MARKETING"]
            for stype in types:
                key = (channel, ident, stype)
                status = "NEWLY_UNSUBSCRIBED" if key in self._active else "PREVIOUSLY_UNSUBSCRIBED"
                self._active.discard(key)
                results.append(
                    {
                        "subscription": {"type": stype, "channel": channel},
                        "subscriptionUnsubscribeStatus": status,
                    }
                )
        return {"user": dict(user), "subscriptionResponses": results}
