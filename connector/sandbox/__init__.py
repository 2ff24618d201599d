"""The Attentive sandbox: a local stand-in of the API for users' own tests (``attentive-connector sandbox``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.sandbox.app import Sandbox, SandboxSettings, make_app

__all__ = ["Sandbox", "SandboxSettings", "make_app"]

__getattr__ = lazy_exports(
    __name__,
    {
        "Sandbox": "connector.sandbox.app",
        "SandboxSettings": "connector.sandbox.app",
        "make_app": "connector.sandbox.app",
    },
)
