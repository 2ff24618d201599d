"""``attentive-connector dev up|down`` (``make up`` / ``make down``): the local stack for running the commands.

``dev up`` starts, in a background process of its own, everything the shipped ``config/connector.yaml`` needs
outside a cluster, on fixed loopback ports:

=====================  =================  ==============================  ===========================
part                   default address    override                        exported as
=====================  =================  ==============================  ===========================
Apache Kafka (KRaft)   127.0.0.1:9092     ``--kafka-port`` / DEV_KAFKA_PORT   KAFKA_BOOTSTRAP_SERVERS
Schema Registry        127.0.0.1:8081     ``--registry-port`` / DEV_REGISTRY_PORT  SCHEMA_REGISTRY_URL
Attentive sandbox      127.0.0.1:8080     ``--sandbox-port`` / DEV_SANDBOX_PORT   ATTENTIVE_API_BASE_URL
(the connector's)      127.0.0.1:9400     ``--metrics-port`` / DEV_METRICS_PORT   METRICS_PORT
=====================  =================  ==============================  ===========================

It waits until each part answers, creates the config's topics and their dead-letter topics, and prints the
``export`` lines on stdout (so ``eval "$(attentive-connector dev up)"`` sets them; everything else goes to
stderr). ``ATTENTIVE_API_KEY`` is the sandbox's local key, not a real one. Running ``dev up`` again while the
stack runs prints the same lines.

``dev down`` stops the background process, which stops the sandbox, the registry and the broker (its JVM)
and deletes the broker's data; then the state folder (``$ATTENTIVE_DEV_STATE``, default
``.cache/dev-stack``) is removed. Nothing is left running and no temporary folder remains.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from connector.devkafka.apicurio import CCOMPAT_PATH
from connector.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "connector.yaml"
DEV_API_KEY = "dev-sandbox-key-not-a-secret"
"""The sandbox's key in the local stack (the sandbox is local; this is no real Attentive key)."""


@dataclass(frozen=True)
class StackPorts:
    kafka: int = 9092
    registry: int = 8081
    sandbox: int = 8080
    metrics: int = 9400


def stack_env(ports: StackPorts) -> dict[str, str]:
    """The variables that point the shipped config at the local stack."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports.kafka}",
        "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{ports.registry}{CCOMPAT_PATH}",
        "ATTENTIVE_API_BASE_URL": f"http://127.0.0.1:{ports.sandbox}",
        "ATTENTIVE_API_KEY": DEV_API_KEY,
        "METRICS_PORT": str(ports.metrics),
        "LOG_FORMAT": "text",
    }


def default_state_dir() -> Path:
    env = os.environ.get("ATTENTIVE_DEV_STATE")
    if env:
        return Path(env)
    from connector.devkafka.broker import cache_dir

    return cache_dir() / "dev-stack"


# -- the stack itself (runs in the background process) ------------------------------------------------------


def _say(msg: str) -> None:
    print(f"dev: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def local_stack(
    ports: StackPorts, *, config_path: Path = DEFAULT_CONFIG, sandbox_flags: tuple[str, ...] = ()
) -> Iterator[dict[str, str]]:
    """Broker, Schema Registry and sandbox on ``ports``, topics created; yields :func:`stack_env`."""
    from connector.config import load_config
    from connector.devkafka.broker import create_topics, start_local_kafka
    from connector.devkafka.registry import KIND, schema_registry
    from connector.devkafka.sandbox_process import SandboxProcess

    config = load_config(config_path, env={})
    _check_free(ports)
    _say(f"starting Kafka on 127.0.0.1:{ports.kafka} ...")
    broker = start_local_kafka(port=ports.kafka)
    try:
        with schema_registry(port=ports.registry) as registry_url:
            _say(f"schema registry ({KIND}) at {registry_url}")
            sandbox = SandboxProcess("--port", str(ports.sandbox), *sandbox_flags, api_key=DEV_API_KEY)
            try:
                _say(f"Attentive sandbox at {sandbox.url}")
                topics = list(config.topics)
                create_topics(broker.bootstrap_servers, topics + [config.dlq_topic(t) for t in topics])
                _say(f"topics {', '.join(topics)} and their dead-letter topics are ready")
                yield stack_env(ports)
            finally:
                sandbox.stop()
    finally:
        broker.stop()


def _check_free(ports: StackPorts) -> None:
    import socket

    for name, port in asdict(ports).items():
        if name == "metrics":  # the connector's port, not ours: `run` binds it later
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                flag = f"--{name}-port"
                raise ConfigError(
                    f"{name} port {port} is taken on 127.0.0.1: stop what uses it, or pick another with "
                    f"{flag} / DEV_{name.upper()}_PORT"
                ) from None


def serve(state_dir: Path, ports: StackPorts, config_path: Path) -> int:
    """The background process: start the stack, write ``env.json``, run until SIGTERM/SIGINT, clean up."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not stop.is_set() and not ready.exists():
            # Still starting: unwind from wherever we are, so what is already up is stopped again.
            stop.set()
            raise KeyboardInterrupt(f"signal {signum}")
        stop.set()

    ready = state_dir / "env.json"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        with local_stack(ports, config_path=config_path) as env:
            tmp = ready.with_suffix(".tmp")
            tmp.write_text(json.dumps(env))
            tmp.replace(ready)  # atomically: `dev up` reads it as the "ready" signal
            _say("ready")
            while not stop.wait(1.0):
                pass
    except KeyboardInterrupt:
        _say("interrupted while starting")
        return 130
    except ConfigError as exc:
        _say(f"error: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - the dev command's last word: one line, exit 1
        _say(f"error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        ready.unlink(missing_ok=True)
        _say("stopped")
    return 0


# -- the commands --------------------------------------------------------------------------------------------


def _ports(args: argparse.Namespace) -> StackPorts:
    return StackPorts(args.kafka_port, args.registry_port, args.sandbox_port, args.metrics_port)


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"environment variable {name}: expected a port number from 1 to 65535")
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start broker, registry and sandbox in the background; print the exports")
    down = sub.add_parser("down", help="stop what `dev up` started and remove its data")
    serve_p = sub.add_parser("serve", help=argparse.SUPPRESS)
    for p in (up, down, serve_p):
        p.add_argument(
            "--state-dir", type=Path, default=None, help="default: $ATTENTIVE_DEV_STATE or .cache/dev-stack"
        )
    for p in (up, serve_p):
        p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config whose topics to create")
        defaults = StackPorts()
        for name in ("kafka", "registry", "sandbox", "metrics"):
            p.add_argument(
                f"--{name}-port",
                type=int,
                default=None,
                metavar="PORT",
                help=f"default: $DEV_{name.upper()}_PORT or {getattr(defaults, name)}",
            )
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for readiness")


def main(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    if args.dev_command == "down":
        return down(state_dir)
    defaults = StackPorts()
    for name in ("kafka", "registry", "sandbox", "metrics"):
        attr = f"{name}_port"
        if getattr(args, attr) is None:
            setattr(args, attr, _env_port(f"DEV_{name.upper()}_PORT", getattr(defaults, name)))
    if args.dev_command == "serve":
        return serve(state_dir, _ports(args), args.config)
    return up(state_dir, _ports(args), args.config, timeout_s=args.timeout)


def _read_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _print_exports(env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={value}")
    sys.stdout.flush()


def up(state_dir: Path, ports: StackPorts, config_path: Path, *, timeout_s: float = 300.0) -> int:
    """Start the background process (unless it runs) and wait for it to be ready; print the exports."""
    ready = state_dir / "env.json"
    if _read_pid(state_dir) is not None and ready.exists():
        _say(f"already running (state in {state_dir}); `attentive-connector dev down` stops it")
        _print_exports(json.loads(ready.read_text()))
        return 0
    if _read_pid(state_dir) is not None:
        raise ConfigError(f"a stack is starting or stuck in {state_dir}: run `attentive-connector dev down`")
    _check_free(ports)  # before starting anything (the background process checks again)
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    log_path = state_dir / "stack.log"
    cmd = [sys.executable, "-m", "connector", "dev", "serve", "--state-dir", str(state_dir)]
    cmd += ["--config", str(config_path)]
    for name, port in asdict(ports).items():
        cmd += [f"--{name}-port", str(port)]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (state_dir / "pid").write_text(f"{proc.pid}\n")
    _say(f"starting broker, schema registry and sandbox (log: {log_path}) ...")
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = _tail(log_path)
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
            shutil.rmtree(state_dir, ignore_errors=True)
            last = next((line for line in reversed(tail) if line.startswith("dev: error:")), None)
            raise ConfigError(
                last.removeprefix("dev: error: ")
                if last
                else "the local stack did not start:\n" + "\n".join(tail)
            )
        time.sleep(0.2)
    env = json.loads(ready.read_text())
    _say("ready; `attentive-connector dev down` (or `make down`) stops everything")
    _print_exports(env)
    return 0


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def down(state_dir: Path, *, timeout_s: float = 90.0) -> int:
    """Stop the background process (SIGTERM; it stops its parts) and remove the state folder."""
    pid = _read_pid(state_dir)
    if pid is None:
        shutil.rmtree(state_dir, ignore_errors=True)
        _say("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            _say(f"pid {pid} did not stop within {timeout_s:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    shutil.rmtree(state_dir, ignore_errors=True)
    _say("stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        # A child of ours that exited is a zombie until reaped: reap it (harmless when it is not ours).
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
