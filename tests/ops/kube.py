"""A real Kubernetes API server for the chart tests: etcd + kube-apiserver on free loopback ports.

The binaries are the ones ``ops/k8s/build.sh`` builds from the Go module proxy into ``.cache/bin`` (version
stamped, so helm's ``kubeVersion`` check sees a real version). There is no controller-manager, scheduler or
kubelet: objects are stored and validated (OpenAPI, strict field validation, CRD schemas, admission plugins
such as Priority and PodSecurity), but no Deployment ever becomes a pod. :meth:`KubeCluster.kubectl` and the
kubeconfig at :attr:`KubeCluster.kubeconfig` are what the tests use; helm reads the same kubeconfig.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

READY_TIMEOUT_S = 120.0  # a cold start on a loaded 2-core machine took 17 s


class KubeStartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class KubeBinaries:
    etcd: str
    kube_apiserver: str
    kubectl: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _certificates(directory: Path) -> None:
    """A CA, the API server's serving certificate for 127.0.0.1, and the service-account key pair."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attentive-connector-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "apiserver.key", key)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class KubeCluster:
    """etcd and kube-apiserver as child processes of the test session, in one temporary directory."""

    def __init__(self, binaries: KubeBinaries) -> None:
        # Absolute paths: the processes run in the temporary directory.
        self.binaries = KubeBinaries(
            *(str(Path(b).resolve()) for b in (binaries.etcd, binaries.kube_apiserver, binaries.kubectl))
        )
        self.dir = Path(tempfile.mkdtemp(prefix="attentive-kube-"))
        self.kubeconfig = self.dir / "kubeconfig"
        self.token = secrets.token_hex(16)
        self.server = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both processes by their own pids (apiserver first), then remove the directory."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}.log"
        self._logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        self._procs.append(proc)
        return proc

    def _wait(self, name: str, proc: subprocess.Popen[bytes], url: str, ctx: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(request, timeout=2, context=ctx) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)  # polling a readiness endpoint, not waiting for a result
        tail = (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise KubeStartError(f"{name} not ready at {url} ({last or f'exit {proc.poll()}'}):\n{tail}")

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                self.binaries.etcd,
                "--name=test",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=test=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throwaway data: no fsync on a shared disk
                "--log-level=warn",
            ],
        )
        self._wait("etcd", proc, f"{self.etcd_url}/health", None)

    def _start_apiserver(self) -> None:
        certs = self.dir / "pki"
        certs.mkdir()
        _certificates(certs)
        (self.dir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        proc = self._spawn(
            "kube-apiserver",
            [
                self.binaries.kube_apiserver,
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",  # required on loopback
                f"--secure-port={port}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'apiserver.crt'}",
                f"--tls-private-key-file={certs / 'apiserver.key'}",
                f"--token-auth-file={self.dir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--disable-admission-plugins=ServiceAccount",  # no controller-manager mints tokens
            ],
        )
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        self._wait("kube-apiserver", proc, f"{self.server}/readyz", ctx)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(certs / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                }
            )
        )
        self.kubeconfig.chmod(0o600)

    # -- clients -----------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment for kubectl and helm: this cluster's kubeconfig, helm state in the temp dir."""
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HELM_CACHE_HOME=str(self.dir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.dir / "helm" / "config"),
            HELM_DATA_HOME=str(self.dir / "helm" / "data"),
        )
        return env

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binaries.kubectl, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=self.env(),
        )
