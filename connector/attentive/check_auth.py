"""``attentive-connector check-auth``: call ``GET /v1/me`` with the configured key and say who it belongs to.

Prints ``ok: company=<companyName> application=<applicationName>`` and exits 0, or one ``error: …`` line on
stderr and exits 1 (key refused, no permission, Attentive unreachable or failing). The key comes from
``--api-key-file``, else ``ATTENTIVE_API_KEY`` / ``ATTENTIVE_API_KEY_FILE``, else the config file's
``attentive.api_key`` / ``attentive.api_key_file``; it is never printed, but where it came from is (so a 401
says which key to fix).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx
from pydantic import ValidationError

from connector.attentive.client import AttentiveClient
from connector.config import AttentiveSettings, env_overrides, format_validation_error, load_config
from connector.errors import ApiAuthError, ApiError, ConfigError, NetworkError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="connector config file (attentive section)")
    parser.add_argument(
        "--base-url",
        default=None,
        help="Attentive API URL (default: config, $ATTENTIVE_API_BASE_URL, Attentive)",
    )
    parser.add_argument("--api-key-file", type=Path, default=None, help="file holding the API key")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for Attentive")


def settings_from_args(args: argparse.Namespace) -> AttentiveSettings:
    """The Attentive settings: config file (with env overrides) or the environment alone, then the flags."""
    if args.config is not None:
        settings = load_config(args.config).attentive
    else:
        overrides = env_overrides()
        raw = overrides.apply({})
        try:
            settings = AttentiveSettings.model_validate(raw.get("attentive") or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(Path("(environment)"), exc)) from None
        settings.with_key_origin(overrides.key_origin)
    origin = settings.key_source
    update: dict[str, object] = {}
    if args.base_url:
        update["base_url"] = args.base_url
    if args.api_key_file is not None:
        update["api_key_file"] = args.api_key_file
        update["api_key"] = None  # the flag wins over a key from the config or environment
        origin = "--api-key-file"
    if args.timeout is not None:
        update["timeout_s"] = args.timeout
    if not update:
        return settings
    return AttentiveSettings.model_validate({**settings.model_dump(), **update}).with_key_origin(origin)


async def check(settings: AttentiveSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> str:
    """The ``ok: …`` line; raises :class:`ApiError` (or ``ConfigError`` for a missing key)."""
    async with AttentiveClient(settings, transport=transport, max_connections=1) as client:
        me = await client.me()
    return f"ok: company={me.companyName or '?'} application={me.applicationName or '?'}"


def explain(exc: ApiError, base_url: str, key_source: str | None = None) -> str:
    """One line for a person: what went wrong and what to check. Never contains the key, but names where it
    came from (``ATTENTIVE_API_KEY``, ``attentive.api_key_file in …``, ``--api-key-file …``)."""
    source = f" from {key_source}" if key_source else ""
    if isinstance(exc, ApiAuthError) and exc.status == 401:
        return (
            f"Attentive rejected the API key{source} (401): fix that key, "
            "or create a new one in Attentive (Integrations > Custom apps)"
        )
    if isinstance(exc, ApiAuthError):
        return (
            f"Attentive refused access ({exc.status}) for the API key{source}: "
            "the key's app lacks a permission this endpoint needs"
        )
    if isinstance(exc, NetworkError):
        return str(exc)  # "cannot reach Attentive at <url> …" or "timed out after …"
    return f"Attentive answered HTTP {exc.status} at {base_url}: {exc.body[:200] or exc}"


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        line = asyncio.run(check(settings))
    except ApiError as exc:
        print(f"error: {explain(exc, settings.base_url, settings.key_source)}", file=sys.stderr)
        return 1
    print(line)
    return 0
