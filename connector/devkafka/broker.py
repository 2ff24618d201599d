"""A real Apache Kafka cluster for tests, the demo and the benchmark — the one place that starts one.

Which cluster :func:`kafka_cluster` yields, in order of preference:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set → that cluster, untouched.
2. A Docker daemon answers → testcontainers' Kafka module.
3. Otherwise a **local single-node Apache Kafka 4.x in KRaft mode**: the broker jars and their runtime
   dependencies are fetched from Maven Central with ``mvn dependency:copy-dependencies`` on
   ``connector/devkafka/pom.xml`` and cached in a git-ignored folder (``.cache/kafka-libs``); storage is
   formatted in a temporary folder, the broker listens on free loopback ports, and the process is stopped and
   its data deleted at the end. Its log goes to a file (``LocalKafka.log_path``) whose tail is shown when it
   fails to start (and by the pytest fixture when a test run fails).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from connector.devkafka.jvm import JvmService, find_java, launch, poll_until_ready, started

log = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_READY_MARKER = ".complete"


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started. The message says why and where the log is."""


def cache_dir() -> Path:
    """Where the Kafka jars are cached: ``$ATTENTIVE_CONNECTOR_CACHE`` or the checkout's ``.cache/``."""
    env = os.environ.get("ATTENTIVE_CONNECTOR_CACHE")
    if env:
        return Path(env)
    if (_REPO_ROOT / "pyproject.toml").exists():
        return _REPO_ROOT / ".cache"
    return Path.home() / ".cache" / "attentive-connector"


def ensure_kafka_jars(target: Path | None = None) -> Path:
    """Fetch the broker's jars with Maven unless a complete copy is cached; returns the folder of jars."""
    libs = target or cache_dir() / "kafka-libs"
    if (libs / _READY_MARKER).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka broker jars")
    libs.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka jars with Maven into %s", libs)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BrokerError(
            f"mvn failed ({proc.returncode}) fetching Kafka jars:\n{proc.stdout}\n{proc.stderr}"
        )
    if not list(libs.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"mvn finished but no kafka_2.13 jar is in {libs}")
    (libs / _READY_MARKER).write_text("ok\n")
    return libs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@dataclass(kw_only=True)
class LocalKafka(JvmService):
    """A running single-node KRaft broker. Use :func:`start_local_kafka`; stop with :meth:`stop`
    (``keep_data=True`` leaves its data folder)."""

    label: ClassVar[str] = "broker"
    bootstrap_servers: str


def start_local_kafka(
    *,
    port: int | None = None,
    heap: str = "512m",
    log_level: str = "INFO",
    start_timeout_s: float = 120.0,
    num_partitions: int = 3,
) -> LocalKafka:
    """Start a single-node Apache Kafka (KRaft, combined broker+controller) on loopback and wait for it."""
    java = find_java(BrokerError, "the local Kafka broker")
    libs = ensure_kafka_jars()
    workdir = Path(tempfile.mkdtemp(prefix="attentive-kafka-"))
    port = port or free_port()
    cport = free_port()
    log_path = workdir / "broker.log"
    props = workdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{cport}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={workdir / 'data'}",
                f"num.partitions={num_partitions}",
                "auto.create.topics.enable=true",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.flush.interval.messages=100000000",
                "",
            ]
        )
    )
    log4j = workdir / "log4j2.properties"
    log4j.write_text(_LOG4J2.format(log=log_path, level=log_level))
    classpath = f"{libs}/*"
    jvm = [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={workdir}",
        "-cp",
        classpath,
    ]
    fmt = subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c", str(props)],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise BrokerError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
    proc = launch([*jvm, "kafka.Kafka", str(props)], output=workdir / "broker.out")
    broker = LocalKafka(
        bootstrap_servers=f"127.0.0.1:{port}",
        process=proc,
        workdir=workdir,
        log_path=log_path,
        kept_log=cache_dir() / "kafka-broker-last.log",
    )
    started(  # a broker that never answered keeps its data folder for a look; an interrupted one does not
        broker,
        lambda: wait_until_ready(broker.bootstrap_servers, timeout_s=start_timeout_s, process=proc),
        BrokerError,
        keep_data_on_failure=True,
    )
    log.info("local Kafka broker ready at %s (log: %s)", broker.bootstrap_servers, log_path)
    return broker


def wait_until_ready(
    bootstrap: str, *, timeout_s: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until the cluster answers a metadata request with at least one broker."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

    def probe() -> str | None:
        try:
            return None if admin.list_topics(timeout=2).brokers else "no broker in the metadata"
        except Exception as exc:  # noqa: BLE001 - librdkafka raises KafkaException while the broker boots
            return str(exc)

    poll_until_ready(
        probe,
        process=process,
        timeout_s=timeout_s,
        interval_s=0.3,
        error=BrokerError,
        what=f"the Kafka broker at {bootstrap}",
    )


def _docker_available() -> bool:
    if not shutil.which("docker") and not os.environ.get("DOCKER_HOST"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure to reach a Docker daemon means "no Docker"
        return False
    return True


@contextlib.contextmanager
def kafka_cluster() -> Iterator[str]:
    """Yield the bootstrap servers of a Kafka cluster: configured, testcontainers, or a local broker."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        wait_until_ready(configured, timeout_s=30)
        yield configured
        return
    if os.environ.get("ATTENTIVE_DEVKAFKA_DOCKER", "1") != "0" and _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield str(container.get_bootstrap_server())
        return
    broker = start_local_kafka()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def create_topics(bootstrap: str, names: list[str], *, partitions: int = 3, timeout_s: float = 30.0) -> None:
    """Create topics (idempotent: existing ones are fine) and wait until their leaders are known."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        operation_timeout=timeout_s,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name}: {exc}") from None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=5)
        if all(
            n in md.topics
            and md.topics[n].error is None
            and md.topics[n].partitions
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.2)
    raise BrokerError(f"topics {names} have no leaders after {timeout_s}s")


def main() -> int:
    """``python -m connector.devkafka.broker``: fetch the jars and, with ``--serve``, run a broker until ^C."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--fetch-only", action="store_true", help="only fetch the jars into the cache")
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.fetch_only:
        print(ensure_kafka_jars())
        return 0
    # SIGTERM (kill, a supervisor, CI) must clean up like ^C: the JVM runs in a session of its own, so
    # nobody else stops it, and its data folder is ours to delete.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        broker = start_local_kafka(port=args.port)
    except KeyboardInterrupt:
        return 130
    try:  # from here on the broker is ours to stop, whenever the signal lands
        print(
            f"kafka listening on {broker.bootstrap_servers} "
            f"(pid {broker.process.pid}, data {broker.workdir}, log: {broker.log_path})",
            flush=True,
        )
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
