"""A real Schema Registry for tests, the demo and the benchmark: Apicurio Registry, Confluent-compatible API.

Confluent's own registry is not obtainable here, so the project runs **Apicurio Registry 3.0.9** (Apache-2.0,
a Quarkus app on Java 17) and talks to its Confluent-compatible API under ``/apis/ccompat/v7`` — the API
confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer`` use unchanged.

* **Fetch** (once): ``mvn dependency:get`` of ``io.apicurio:apicurio-registry-app:3.0.9:zip:all`` with
  ``-Dtransitive=false`` (the app's parent POM is not on every mirror, and the zip is self-contained), then the
  zip is unpacked into ``.cache/apicurio-3.0.9`` (marked complete only after a full unpack).
* **Start**: ``java -jar apicurio-registry-app-3.0.9-runner.jar`` on a free loopback port with in-memory
  storage, small heap and no outbound calls; ready when ``GET /health/ready`` answers 200.
* **Compatibility**: like Confluent's default, the global rule is ``BACKWARD`` unless ``compatibility=`` says
  otherwise, so an incompatible schema is refused on register with 409.
* **Stop**: SIGTERM to its own pid (SIGKILL after a grace period); its log is kept in
  ``.cache/apicurio-last.log`` for post-mortems.

Use :func:`schema_registry` (a context manager yielding the Confluent-compatible URL) or
:func:`start_apicurio` for a handle with the process, log and :meth:`LocalApicurio.stop`.
``python -m connector.devkafka.apicurio --fetch-only`` fetches it (``make registry-jars``); without flags it
runs one until Ctrl-C and prints its URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from connector.devkafka.broker import cache_dir, free_port
from connector.devkafka.jvm import JvmService, find_java, launch, poll_until_ready, started

log = logging.getLogger(__name__)

VERSION = "3.0.9"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:zip:all"
RUNNER_JAR = f"apicurio-registry-app-{VERSION}-runner.jar"
CCOMPAT_PATH = "/apis/ccompat/v7"
_READY_MARKER = ".complete"


class RegistryError(RuntimeError):
    """Apicurio Registry could not be fetched or started. The message says why (and where its log is)."""


def install_dir() -> Path:
    """Where the unpacked registry lives: ``<cache>/apicurio-<version>`` (see :func:`broker.cache_dir`)."""
    return cache_dir() / f"apicurio-{VERSION}"


def _maven_repo() -> Path:
    """Maven's local repository, where ``dependency:get`` leaves the zip (``-Dmaven.repo.local`` is explicit)."""
    env = os.environ.get("ATTENTIVE_MAVEN_REPO")
    return Path(env) if env else Path.home() / ".m2" / "repository"


def ensure_apicurio(target: Path | None = None) -> Path:
    """Fetch and unpack the registry unless a complete copy is cached; returns the runner jar's path."""
    home = target or install_dir()
    if (home / _READY_MARKER).exists():
        return _runner_jar(home)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RegistryError("Maven (mvn) is not on PATH: it is needed once to fetch Apicurio Registry")
    repo = _maven_repo()
    log.info("fetching Apicurio Registry %s with Maven (about 110 MB)", VERSION)
    cmd = [
        mvn,
        "-B",
        "-q",
        f"-Dmaven.repo.local={repo}",
        "dependency:get",
        f"-Dartifact={ARTIFACT}",
        "-Dtransitive=false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archive = (
        repo / "io/apicurio/apicurio-registry-app" / VERSION / f"apicurio-registry-app-{VERSION}-all.zip"
    )
    if proc.returncode != 0 or not archive.is_file():
        raise RegistryError(
            f"mvn failed ({proc.returncode}) fetching {ARTIFACT}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    # Unpack beside the target and rename, so an interrupted unpack never looks complete.
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{home.name}-", dir=home.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        jars = list(staging.rglob(RUNNER_JAR))
        if len(jars) != 1:
            raise RegistryError(f"{archive} holds {len(jars)} copies of {RUNNER_JAR}, expected one")
        app = jars[0].parent  # the folder with the runner jar and its lib/
        shutil.rmtree(home, ignore_errors=True)
        app.rename(home)
        (home / _READY_MARKER).write_text(f"{ARTIFACT}\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _runner_jar(home)


def _runner_jar(home: Path) -> Path:
    jar = home / RUNNER_JAR
    if not jar.is_file():
        raise RegistryError(f"{jar} is missing: delete {home} and fetch again")
    return jar


@dataclass(kw_only=True)
class LocalApicurio(JvmService):
    """A running registry. Use :func:`start_apicurio`; stop with :meth:`stop` (or ``with``)."""

    label: ClassVar[str] = "registry"
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API: what ``schema.registry.url`` / ``kafka.schema_registry.url`` take."""
        return self.base_url + CCOMPAT_PATH

    def __enter__(self) -> LocalApicurio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_apicurio(
    *,
    port: int | None = None,
    heap: str = "256m",
    compatibility: str = "BACKWARD",
    start_timeout_s: float = 120.0,
) -> LocalApicurio:
    """Start Apicurio Registry on ``127.0.0.1:port`` (a free one by default) and wait until it is ready."""
    java = find_java(RegistryError, "Apicurio Registry")
    jar = ensure_apicurio()
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="attentive-apicurio-"))
    log_path = workdir / "registry.log"
    cmd = [
        java,
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",  # C1 only: starts in half the time; the tests' load is small
        "-Djava.awt.headless=true",
        f"-Djava.io.tmpdir={workdir}",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.analytics.disabled=true",
        # Confluent's default: a new version must be able to read data written with the previous one.
        f"-Dapicurio.rules.global.compatibility={compatibility}",
        "-jar",
        str(jar),
    ]
    proc = launch(cmd, output=log_path, cwd=workdir)
    registry = LocalApicurio(
        port=port,
        process=proc,
        workdir=workdir,
        log_path=log_path,
        kept_log=cache_dir() / "apicurio-last.log",
    )
    started(
        registry,
        lambda: wait_until_ready(registry.base_url, timeout_s=start_timeout_s, process=proc),
        RegistryError,
    )
    log.info("Apicurio Registry ready at %s (log: %s)", registry.url, log_path)
    return registry


def wait_until_ready(
    base_url: str, *, timeout_s: float = 120.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``GET /health/ready`` until it answers 200 (or the process exits, or the deadline passes)."""
    with httpx.Client(timeout=2.0) as client:

        def probe() -> str | None:
            try:
                resp = client.get(f"{base_url}/health/ready")
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

        poll_until_ready(
            probe,
            process=process,
            timeout_s=timeout_s,
            interval_s=0.2,
            error=RegistryError,
            what=f"Apicurio Registry at {base_url}",
        )


@contextlib.contextmanager
def schema_registry(*, port: int | None = None, compatibility: str = "BACKWARD") -> Iterator[str]:
    """Start a local Apicurio Registry and yield its Confluent-compatible URL; stopped on exit."""
    registry = start_apicurio(port=port, compatibility=compatibility)
    try:
        yield registry.url
    finally:
        registry.stop()


def main() -> int:
    """``python -m connector.devkafka.apicurio``: fetch it and, without ``--fetch-only``, run one until ^C."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--fetch-only", action="store_true", help="only fetch and unpack it into the cache")
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.fetch_only:
            print(ensure_apicurio())
            return 0
        registry = start_apicurio(port=args.port)
    except RegistryError as exc:
        print(f"error: {exc}")
        return 1
    print(f"schema registry (Apicurio {VERSION}) at {registry.url} (log: {registry.log_path})", flush=True)
    try:
        registry.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
