"""What the sandbox remembers of identity links and privacy deletion requests.

* :class:`Identities`: every accepted Identity API call joins its identifiers (phone, email, shopifyId,
  klaviyoId, clientUserId, each custom identifier) into one person. An event or custom-attributes call that
  names the person only by ``externalIdentifiers`` is counted *attributed* when one of those identifiers was
  linked before it arrived, else *unattributed* (``GET /__sandbox/stats`` → ``identity``). Attentive answers
  200 either way (what it does with an unlinked id is not documented); the count is how a test or the demo
  sees whether "link first, then events by customer id" held. (``--no-validate`` parses no bodies: no links,
  no counts.)
* :class:`PrivacyRequests`: accepted deletion requests under the id the sandbox answered with, returned by
  ``GET /v1/privacy/delete-request/{id}`` as ``PrivacyRequestDto`` with the subject masked the way the spec's
  example is (``+*****5555``, ``a**@website.com``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_LINK_KEYS = ("phone", "email", "shopifyId", "klaviyoId", "clientUserId")


def _keys_of_identify(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = [(k, str(body[k])) for k in _LINK_KEYS if body.get(k)]
    keys.extend(
        (f"custom:{custom['name']}", str(custom["value"]))
        for custom in body.get("customIdentifiers") or ()
        if isinstance(custom, Mapping) and custom.get("name") and custom.get("value")
    )
    return keys


def _external_keys(ext: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = [("clientUserId", str(ext["clientUserId"]))] if ext.get("clientUserId") else []
    keys.extend(
        (f"custom:{custom['name']}", str(custom["value"]))
        for custom in ext.get("customIdentifiers") or ()
        if isinstance(custom, Mapping) and custom.get("name") and custom.get("value")
    )
    return keys


class Identities:
    """Identifiers joined by identity calls (one set per person), and attribution counts of events."""

    def __init__(self) -> None:
        self._person: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1)
        self.links = 0
        self.attributed = 0
        self.unattributed = 0

    def clear(self) -> None:
        self._person.clear()
        self.links = self.attributed = self.unattributed = 0

    def link(self, body: Mapping[str, Any]) -> None:
        """Join the identifiers of one accepted identity request into one person."""
        keys = _keys_of_identify(body)
        people = {self._person[k] for k in keys if k in self._person}
        person = min(people) if people else next(self._ids)
        for key, owner in list(self._person.items()):
            if owner in people:
                self._person[key] = person
        for key in keys:
            self._person[key] = person
        self.links += 1

    def is_linked(self, kind: str, value: str) -> bool:
        return (kind, value) in self._person

    def observe_event(self, body: Mapping[str, Any]) -> None:
        """Count an event/attributes call that names its person only by external identifiers."""
        user = body.get("user")
        if not isinstance(user, Mapping) or user.get("phone") or user.get("email"):
            return
        ext = user.get("externalIdentifiers")
        if not isinstance(ext, Mapping):
            return
        if any(k in self._person for k in _external_keys(ext)):
            self.attributed += 1
        else:
            self.unattributed += 1

    def stats(self) -> dict[str, Any]:
        return {
            "links": self.links,
            "events_by_external_id": {"attributed": self.attributed, "unattributed": self.unattributed},
        }


def mask_phone(phone: str) -> str:
    """``+13115555555`` → ``+*******5555`` (the spec's example shows ``+*****5555``)."""
    digits = phone.lstrip("+")
    return "+" + "*" * max(0, len(digits) - 4) + digits[-4:]


def mask_email(email: str) -> str:
    """``abc@website.com`` → ``a**@website.com``."""
    local, _, domain = email.partition("@")
    return (local[:1] + "**@" + domain) if domain else "***"


class PrivacyRequests:
    """Accepted deletion requests, by the id the sandbox gave them."""

    def __init__(self) -> None:
        self._requests: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def clear(self) -> None:
        self._requests.clear()
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, body: Mapping[str, Any], now: float) -> str:
        request_id = f"del{next(self._ids):06d}"
        stored: dict[str, Any] = {
            "id": request_id,
            "processed": False,
            "type": "DELETE",
            "requestDateTime": _timestamp(now),
        }
        if body.get("subjectPhone"):
            stored["subjectPhone"] = mask_phone(str(body["subjectPhone"]))
        if body.get("subjectEmail"):
            stored["subjectEmail"] = mask_email(str(body["subjectEmail"]))
        if body.get("requestMsg"):
            stored["requestMsg"] = str(body["requestMsg"])
        self._requests[request_id] = stored
        return request_id

    def get(self, request_id: str) -> dict[str, Any] | None:
        found = self._requests.get(request_id)
        return dict(found) if found is not None else None


def _timestamp(now: float) -> str:
    # The spec's example format: 2020-09-02T17:44:23.875+0000
    return (
        datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(now * 1000) % 1000:03d}+0000"
    )
