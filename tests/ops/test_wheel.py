"""The wheel: the connector, the sandbox and the Attentive spec — not the development tooling.

Built here the way the Dockerfile builds the image (``pip install .`` of pyproject.toml, README.md and
connector/ copied alone), so what is measured is the package configuration, not a build folder left in the
checkout. ``connector/devkafka`` stays out (see its docstring); from the wheel, ``attentive-connector dev`` and
``demo`` say in one line to run them from a checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from connector.cli import DEV_TOOLING_MISSING
from tests.support import REPO

SOURCE = REPO / "connector"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(SOURCE, src / "connector", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [whl] = out.glob("attentive_connector-*.whl")
    return whl


def shipped_modules() -> set[str]:
    """Every module of the checkout's ``connector`` package except the development tooling."""
    return {
        p.relative_to(REPO).as_posix()
        for p in SOURCE.rglob("*.py")
        if "__pycache__" not in p.parts and not p.relative_to(SOURCE).as_posix().startswith("devkafka/")
    }


def test_the_wheel_holds_the_connector_the_sandbox_and_the_spec_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    files = {n for n in names if not n.startswith("attentive_connector-")}  # less the .dist-info
    assert not {n for n in files if n.startswith("connector/devkafka/")}, "dev tooling shipped"
    expected = shipped_modules() | {
        "connector/py.typed",
        "connector/attentive/spec/attentive-v1-openapi.json",
    }
    assert files == expected
    assert {"connector/sandbox/app.py", "connector/sandbox/cli.py", "connector/pipeline/run.py"} <= files


def test_from_the_wheel_dev_and_demo_say_to_run_them_from_a_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # A Python that sees the wheel and this venv's dependencies but not the checkout: -S skips site, so the
    # editable install's .pth finder (which maps every connector.* module to the checkout) is not loaded; it
    # refuses to go on if the dev tooling is importable all the same (it would start a stack).
    deps = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    program = (
        "import sys, importlib.util; sys.path[:0] = sys.argv[1].split('\\n'); del sys.argv[1]; "
        "import connector, connector.cli as cli; "
        "assert connector.__file__.startswith(sys.path[0]), connector.__file__; "
        "assert importlib.util.find_spec('connector.devkafka') is None, 'dev tooling importable'; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-c", program, "\n".join([str(site), *deps]), *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    for argv in (["dev", "up"], ["dev", "down"], ["demo", "--count", "5"]):
        result = cli(*argv)
        assert (result.returncode, result.stdout) == (2, ""), (argv, result.stderr[-2000:])
        assert result.stderr == f"error: {DEV_TOOLING_MISSING}\n", argv
    assert cli("run", "--help").returncode == 0  # the connector itself runs from the wheel
