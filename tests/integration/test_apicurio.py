"""connector.devkafka.apicurio: a real registry starts, answers, and stops by its pid; each failure is one clear
error (missing tools, a failed or odd fetch, a JVM that dies or never gets ready) and leaves nothing running.

The failure cases put small fake ``mvn``/``java`` scripts first on ``PATH`` — the real ones cannot be made to
fail on demand — and fetch into a temporary folder, never the shared cache.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import httpx
import pytest

from connector.devkafka import apicurio

pytestmark = pytest.mark.integration


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder put first on PATH, for fake tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_a_started_registry_serves_the_confluent_api_and_stops_by_its_pid() -> None:
    registry = apicurio.start_apicurio()
    try:
        assert registry.url.endswith("/apis/ccompat/v7") and registry.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{registry.url}/subjects", timeout=10).json() == []
    finally:
        registry.stop()
    assert registry.process.returncode is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry.base_url}/health/ready", timeout=5)
    assert registry.log_path.is_file()  # kept for post-mortems
    assert not registry.workdir.exists()


def test_without_maven_the_fetch_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(apicurio.RegistryError, match=r"Maven \(mvn\) is not on PATH"):
        apicurio.ensure_apicurio(tmp_path / "apicurio")


def test_a_failed_maven_fetch_shows_mavens_output(tmp_path: Path, fake_bin: Path) -> None:
    fake_tool(fake_bin, "mvn", "echo 'Could not resolve artifact' >&2\nexit 1\n")
    with pytest.raises(apicurio.RegistryError, match=r"mvn failed \(1\)[\s\S]*Could not resolve artifact"):
        apicurio.ensure_apicurio(tmp_path / "apicurio")
    assert not (tmp_path / "apicurio").exists()


def test_an_archive_without_the_runner_jar_is_refused_and_not_marked_complete(
    tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "m2"
    monkeypatch.setenv("ATTENTIVE_MAVEN_REPO", str(repo))
    folder = repo / "io/apicurio/apicurio-registry-app" / apicurio.VERSION
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / f"apicurio-registry-app-{apicurio.VERSION}-all.zip", "w") as zf:
        zf.writestr("apicurio/README.txt", "no jar here")
    fake_tool(fake_bin, "mvn", "exit 0\n")
    with pytest.raises(apicurio.RegistryError, match="holds 0 copies"):
        apicurio.ensure_apicurio(tmp_path / "apicurio")
    assert not (tmp_path / "apicurio" / ".complete").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".apicurio")] == []  # staging removed


def test_without_java_the_start_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(apicurio.RegistryError, match="java is not on PATH"):
        apicurio.start_apicurio()


def test_a_jvm_that_dies_while_starting_is_reported_with_its_log(fake_bin: Path) -> None:
    fake_tool(fake_bin, "java", "echo 'Error: Unable to access jarfile' \nexit 3\n")
    with pytest.raises(apicurio.RegistryError) as err:
        apicurio.start_apicurio(start_timeout_s=30)
    assert "exited with code 3" in str(err.value)
    assert "Unable to access jarfile" in str(err.value)  # the log tail


def test_a_registry_never_ready_is_stopped_after_the_deadline(fake_bin: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake_tool(fake_bin, "java", f"echo $$ > {pid_file}\nexec sleep 120\n")
    with pytest.raises(apicurio.RegistryError, match=r"not ready within 1s"):
        apicurio.start_apicurio(start_timeout_s=1)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped (and reaped), not left running
