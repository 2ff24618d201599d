"""Configuration errors as one clear line (issue 12, items 5 and 9): environment variables and the API key.

The reproductions are the issue's own: ``METRICS_PORT=abc`` / ``LOG_FORMAT=pretty`` used to end in a pydantic
traceback echoing ``input_value='abc'``; ``LOG_LEVEL=verbose`` passed ``validate`` and crashed ``run``; two key
sources let one win silently; an empty key file was sent to Attentive; a 401 did not say which key was used.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connector.attentive.check_auth import check, explain
from connector.config import load_config
from connector.errors import ApiAuthError, ConfigError
from tests.support import run_cli
from tests.unit.test_engine_app import env_without_overrides, good_rules, write_config

BAD_ENV = [
    ("METRICS_PORT", "abc", "expected a port number from 0 to 65535"),
    ("METRICS_PORT", "70000", "expected a port number from 0 to 65535"),
    ("LOG_FORMAT", "pretty", "expected json or text"),
    ("LOG_LEVEL", "verbose", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
]


@pytest.mark.parametrize(("name", "value", "form"), BAD_ENV)
def test_a_bad_variable_is_one_line_naming_it_never_its_value_in_run_and_validate(
    tmp_path: Path, name: str, value: str, form: str
) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    env = {**env_without_overrides(), name: value}
    expected = f"environment variable {name}: {form}"
    ran = run_cli(["run", "--config", str(cfg)], env=env, timeout=60)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [f"error: {expected}"], ran.stderr
    assert value not in ran.stderr + ran.stdout and "Traceback" not in ran.stderr
    # validate checks what run checks, log level and format included.
    validated = run_cli(["validate", "--config", str(cfg)], env=env, timeout=60)
    assert validated.returncode == 1
    assert validated.stdout.strip().splitlines() == [expected], validated.stdout + validated.stderr
    assert value not in validated.stdout + validated.stderr


@pytest.mark.parametrize("command", [["produce-samples"], ["dlq", "replay", "--topic", "loyalty.dlq"]])
def test_every_command_reading_the_config_reports_a_bad_variable_the_same_way(
    tmp_path: Path, command: list[str]
) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    result = run_cli(
        [*command, "--config", str(cfg)], env={**env_without_overrides(), "LOG_FORMAT": "pretty"}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: environment variable LOG_FORMAT: expected json or text"
    ]


def test_check_auth_without_a_config_reports_bad_key_variables() -> None:
    env = {**env_without_overrides(), "ATTENTIVE_API_KEY": "k" * 20, "ATTENTIVE_API_KEY_FILE": "/run/key"}
    result = run_cli(["check-auth"], env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: environment: ATTENTIVE_API_KEY and ATTENTIVE_API_KEY_FILE are both set: unset one"
    ]
    assert "k" * 20 not in result.stderr


def test_log_level_in_the_file_is_checked_and_normalised(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    text = cfg.read_text() + "logging:\n  level: verbose\n"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, env={})
    assert str(exc.value) == f"{cfg}: logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    cfg.write_text(text.replace("verbose", "warn"))
    assert load_config(cfg, env={}).logging.level == "WARNING"


# -- the key: one source, not empty, and errors that say which ------------------------------------------------


def test_both_key_entries_in_the_file_is_an_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    cfg.write_text(
        cfg.read_text().replace(
            "api_key: unit-test-key-123456", "api_key: unit-test-key-123456\n  api_key_file: /run/key"
        )
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, env={})
    assert "attentive: api_key and api_key_file are both set" in str(exc.value)
    assert "unit-test-key-123456" not in str(exc.value)


def test_both_key_variables_is_an_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    with pytest.raises(ConfigError, match="ATTENTIVE_API_KEY and ATTENTIVE_API_KEY_FILE are both set"):
        load_config(cfg, env={"ATTENTIVE_API_KEY": "x" * 12, "ATTENTIVE_API_KEY_FILE": "/run/key"})


def test_a_key_variable_replaces_the_files_key_instead_of_adding_a_second_source(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())  # the file has attentive.api_key
    key_file = tmp_path / "key"
    key_file.write_text("from-the-mounted-secret\n")
    config = load_config(cfg, env={"ATTENTIVE_API_KEY_FILE": str(key_file)})
    assert config.attentive.resolved_api_key().get_secret_value() == "from-the-mounted-secret"
    assert config.attentive.key_source == "ATTENTIVE_API_KEY_FILE"
    assert load_config(cfg, env={}).attentive.key_source == f"attentive.api_key in {cfg}"


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_key_is_an_error(tmp_path: Path, value: str) -> None:
    cfg = write_config(tmp_path, rules=good_rules(), api_key=None)
    with pytest.raises(ConfigError, match="ATTENTIVE_API_KEY is set but empty"):
        load_config(cfg, env={"ATTENTIVE_API_KEY": value})
    cfg.write_text(cfg.read_text().replace("attentive:", f"attentive:\n  api_key: '{value}'"))
    with pytest.raises(ConfigError, match="attentive: api_key is empty"):
        load_config(cfg, env={})


def test_an_empty_key_file_is_never_sent(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules(), api_key=None)
    empty = tmp_path / "key"
    empty.write_text("\n")
    config = load_config(cfg, env={"ATTENTIVE_API_KEY_FILE": str(empty)})
    with pytest.raises(ConfigError) as exc:
        config.attentive.resolved_api_key()
    assert str(exc.value) == (
        f"ATTENTIVE_API_KEY_FILE: the API key file {empty} is empty; expected the key on one line"
    )
    # `run` stops there (exit 2) instead of calling Attentive with an empty bearer token.
    env = {**env_without_overrides(), "ATTENTIVE_API_KEY_FILE": str(empty)}
    ran = run_cli(["run", "--config", str(cfg)], env=env, timeout=60)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines()[-1].startswith("error: ATTENTIVE_API_KEY_FILE: the API key file")
    # validate says the same (it checks what run checks), and stays quiet when no key is configured at all.
    checked = run_cli(["validate", "--config", str(cfg)], env=env, timeout=60)
    assert checked.returncode == 1
    assert checked.stdout.strip().splitlines() == [str(exc.value)]
    assert run_cli(["validate", "--config", str(cfg)], env=env_without_overrides()).returncode == 0


async def test_a_refused_key_says_where_it_came_from(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    settings = load_config(cfg, env={"ATTENTIVE_API_KEY": "refused-key-0123456789"}).attentive
    transport = httpx.MockTransport(lambda _req: httpx.Response(401, json={"message": "unauthorized"}))
    with pytest.raises(ApiAuthError) as exc:
        await check(settings, transport=transport)
    line = explain(exc.value, settings.base_url, settings.key_source)
    assert line.startswith("Attentive rejected the API key from ATTENTIVE_API_KEY (401)")
    assert "refused-key-0123456789" not in line
    from_file = load_config(cfg, env={}).attentive
    assert f"from attentive.api_key in {cfg} (401)" in explain(exc.value, "x", from_file.key_source)
