"""``attentive-connector run`` / ``dlq replay`` start-up errors: clear message, exit 2, nothing consumed."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support import REPO, run_cli


def write_config(tmp_path: Path, *, rules: str, api_key: str | None = "unit-test-key-123456") -> Path:
    (tmp_path / "rules.yaml").write_text(rules)
    cfg = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},  # never reached: start-up fails first
        "topics": {"loyalty": {"schema": str(REPO / "schemas" / "loyalty.avsc")}},
        "rules": "rules.yaml",
        "attentive": {"base_url": "http://127.0.0.1:1"} | ({"api_key": api_key} if api_key else {}),
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def good_rules() -> str:
    rules = yaml.safe_load((REPO / "config" / "rules.yaml").read_text())["rules"]
    return yaml.safe_dump({"rules": [r for r in rules if r.get("topics") == ["loyalty"]]})


def env_without_overrides() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("ATTENTIVE_", "KAFKA_", "METRICS_"))}


def test_run_with_a_broken_rule_table_exits_2_naming_the_problem(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules="rules:\n  - name: x\n    topics: [loyalty]\n    api: no_such_api\n")
    result = run_cli(["run", "--config", str(cfg)], env=env_without_overrides(), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr
    assert "no_such_api" in result.stderr or "api" in result.stderr


def test_run_without_an_api_key_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules(), api_key=None)
    result = run_cli(["run", "--config", str(cfg)], env=env_without_overrides(), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "ATTENTIVE_API_KEY" in result.stderr


def test_run_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        ["run", "--config", str(tmp_path / "nope.yaml")], env=env_without_overrides(), timeout=60
    )
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr


def test_dlq_replay_with_a_bad_since_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    result = run_cli(
        ["dlq", "replay", "--config", str(cfg), "--topic", "loyalty.dlq", "--since", "last tuesday"],
        env=env_without_overrides(),
        timeout=60,
    )
    assert result.returncode == 2
    assert "--since" in result.stderr


def test_dlq_replay_with_an_unreachable_attentive_fails_before_reading(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rules=good_rules())
    result = run_cli(
        ["dlq", "replay", "--config", str(cfg), "--topic", "loyalty.dlq"],
        env=env_without_overrides(),
        timeout=60,
    )
    assert result.returncode == 1
    assert "dlq replay failed" in result.stderr
    assert "unit-test-key-123456" not in result.stderr + result.stdout
