"""Azurite (the Azure Storage emulator) for tests: blob, queue and table services on free loopback ports.

Why a real emulator: the audit Table sink and the queue fan-out are thin layers over the Azure SDKs, and what can
go wrong (paging, entity limits, base64 message encoding) only shows against a server that speaks the protocol.

Started once per test session from ``node_modules/.bin/azurite`` (``npm ci`` installs it; ``make test`` runs that).
A missing install is a test failure, never a skip: CI must not go green without these tests having run.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
HOST = "127.0.0.1"
# Azurite's single well-known development account (public, documented; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT = 60.0
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


@dataclass(frozen=True)
class AzuriteEndpoints:
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        """Explicit-endpoint form of UseDevelopmentStorage=true, with this instance's ports."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{HOST}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://{HOST}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://{HOST}:{self.table_port}/{ACCOUNT};"
        )


def unique_name(prefix: str = "t") -> str:
    """A table/queue name no other test in the session uses (letters and digits: valid for both)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def _missing_install_message() -> str:
    return (
        f"Azurite is not installed ({AZURITE_BIN.relative_to(REPO_ROOT)} is missing). "
        "Run `make test`, or `npm ci` in the repository root, then re-run pytest."
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def run_azurite(workdir: Path, timeout: float = STARTUP_TIMEOUT) -> Iterator[AzuriteEndpoints]:
    """Start Azurite in ``workdir`` with in-memory storage; yield its ports once all three accept connections.

    Ports are chosen by the OS (``--*Port 0``) and read back from Azurite's startup lines, so parallel sessions
    never race for a port. The process (and its group) is stopped on exit.
    """
    if not AZURITE_BIN.exists():
        pytest.fail(_missing_install_message(), pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("Azurite needs Node.js (`node` is not on PATH); install Node.js 20+, then `npm ci`.", pytrace=False)
    command = [
        str(AZURITE_BIN),
        "--silent",
        "--inMemoryPersistence",
        "--extentMemoryLimit", "256",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--blobHost", HOST, "--blobPort", "0",
        "--queueHost", HOST, "--queuePort", "0",
        "--tableHost", HOST, "--tablePort", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: teardown stops everything it started
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:  # keep draining stdout so Azurite never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="azurite-stdout", daemon=True).start()
    try:
        ports: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while len(ports) < 3:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"Azurite did not start within {timeout:.0f}s; output:\n{''.join(output)}", pytrace=False)
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=5)
                pytest.fail(
                    f"Azurite exited with code {process.returncode} during startup; output:\n{''.join(output)}",
                    pytrace=False,
                )
            output.append(line)
            match = _LISTENING.search(line)
            if match:
                ports[match.group(1).lower()] = int(match.group(2))
        endpoints = AzuriteEndpoints(ports["blob"], ports["queue"], ports["table"])
        while not all(_accepts(p) for p in (endpoints.blob_port, endpoints.queue_port, endpoints.table_port)):
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite ports {sorted(ports.values())} never accepted connections", pytrace=False)
            time.sleep(0.05)
        yield endpoints
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def azurite_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteEndpoints]:
    """One Azurite per test session (startup takes about a second); tests isolate by unique table/queue names."""
    with run_azurite(tmp_path_factory.mktemp("azurite")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def azurite(azurite_endpoints: AzuriteEndpoints) -> str:
    """Connection string (account devstoreaccount1) for the session's Azurite: blob, queue and table."""
    return azurite_endpoints.connection_string
