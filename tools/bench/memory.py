"""What strangers' big bodies cost in memory: 8 concurrent 64 MiB POSTs to place_call's
``/webhook`` with a well-formed, current, but wrong ``ElevenLabs-Signature`` (the worst a
stranger can do: the header checks out, so the body is read, hashed as it streams and refused
at the end), beside the bare function receiving the same bodies (functions-framework reads a
whole body into memory after a non-streamed answer). Information, not judged: the peak resident
memory of each function's process tree (the gunicorn arbiter and its worker, ``VmHWM``)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tools.bench.serve import Probes, serve_ready

BODY_MIB = 64
SENDERS = 8
_CHUNK = b"A" * (1024 * 1024)


def _peak_kib(pid: int) -> int:
    """The highest resident memory of ``pid`` and its children, KiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    for each in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def _send(port: int, path: str) -> None:
    """One stranger: headers announcing 64 MiB, then the body, then whatever comes back."""
    header = f"t={int(time.time())},v0={secrets.token_hex(32)}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_MIB * 1024 * 1024}\r\nElevenLabs-Signature: {header}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(head.encode())
        with contextlib.suppress(OSError):  # a server that answers early may close on us
            for _ in range(BODY_MIB):
                conn.sendall(_CHUNK)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass


def measure(
    bundles: Mapping[str, Path],
    envs: Mapping[str, Mapping[str, str]],
    probes: Probes,
    *,
    logs: Path,
    names: tuple[str, str],
) -> dict[str, Any]:
    """Peak memory before and after the strangers, per function (``names``: the bare one and
    place_call)."""
    figures: dict[str, Any] = {"senders": SENDERS, "body_mib": BODY_MIB}
    for name in names:
        with contextlib.ExitStack() as running:
            process, port = serve_ready(
                running, name, bundles[name], envs[name], logs / f"memory-{name}.log", probes
            )
            before = _peak_kib(process.pid)
            path = "/webhook" if name == names[1] else "/"
            with ThreadPoolExecutor(max_workers=SENDERS) as pool:
                list(pool.map(_send, [port] * SENDERS, [path] * SENDERS))
            time.sleep(0.5)
            figures[name] = {"before_mib": before / 1024, "peak_mib": _peak_kib(process.pid) / 1024}
    return figures


def render(figures: Mapping[str, Any], names: tuple[str, str]) -> str:
    lines = [
        f"Memory: {figures['senders']} concurrent {figures['body_mib']} MiB bodies with a forged "
        "signature (information, not judged)",
        "",
        f"{'':32}{'before MiB':>12}{'peak MiB':>12}",
    ]
    for name in names:
        row = figures[name]
        lines.append(f"{name:32}{row['before_mib']:>12.1f}{row['peak_mib']:>12.1f}")
    return "\n".join(lines)
