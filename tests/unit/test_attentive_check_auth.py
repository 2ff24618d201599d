"""check-auth: where the key and URL come from, the ok line, and the error messages (never the key)."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from connector.attentive.check_auth import add_arguments, check, explain, settings_from_args
from connector.errors import ApiAuthError, ApiTransientError, ConfigError, NetworkError

KEY = "check-auth-secret-key-99"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATTENTIVE_API_KEY", "ATTENTIVE_API_KEY_FILE", "ATTENTIVE_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_key_and_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTENTIVE_API_KEY", KEY)
    monkeypatch.setenv("ATTENTIVE_API_BASE_URL", "http://127.0.0.1:9")
    s = settings_from_args(parse())
    assert s.resolved_api_key().get_secret_value() == KEY and s.base_url == "http://127.0.0.1:9"
    s = settings_from_args(parse("--base-url", "http://x.test", "--timeout", "2.5"))
    assert s.base_url == "http://x.test" and s.timeout_s == 2.5


def test_key_file_flag_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTENTIVE_API_KEY", "from-env")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    s = settings_from_args(parse("--api-key-file", str(key_file)))
    assert s.resolved_api_key().get_secret_value() == KEY


def test_key_from_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "connector.yaml"
    cfg.write_text(
        f"topics:\n  orders:\n    schema: orders.avsc\nattentive:\n  api_key: {KEY}\n  base_url: http://cfg.test\n"
    )
    s = settings_from_args(parse("--config", str(cfg)))
    assert s.resolved_api_key().get_secret_value() == KEY and s.base_url == "http://cfg.test"


def test_no_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no API key"):
        settings_from_args(parse()).resolved_api_key()


async def test_check_ok_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}" and request.url.path == "/v1/me"
        return httpx.Response(200, json={"companyName": "Hudson & Ivy", "applicationName": "Pillow Api"})

    s = settings_from_args(parse("--base-url", "https://api.test"))
    s = s.model_copy(update={"api_key": SecretStr(KEY)})
    assert (
        await check(s, transport=httpx.MockTransport(handler))
        == "ok: company=Hudson & Ivy application=Pillow Api"
    )


def test_explanations_are_clear_and_keyless() -> None:
    base = "https://api.attentivemobile.com"
    msgs = [
        explain(ApiAuthError("x", endpoint="me", status=401), base),
        explain(ApiAuthError("x", endpoint="me", status=403), base),
        explain(NetworkError(f"cannot reach Attentive at {base} for me: refused", endpoint="me"), base),
        explain(ApiTransientError("x", endpoint="me", status=503, body="maintenance"), base),
    ]
    assert msgs[0].startswith("Attentive rejected the API key (401)")
    assert "(403)" in msgs[1] and "permission" in msgs[1]
    assert msgs[2].startswith(f"cannot reach Attentive at {base}")
    assert "503" in msgs[3] and "maintenance" in msgs[3]
    assert not any(KEY in m for m in msgs)
