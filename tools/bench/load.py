"""Load generation with wrk: installing it, the pre-signed deliveries it sends, one run.

wrk's Lua has no HMAC, so every delivery is signed beforehand: one line per delivery,
``<X-Hub-Signature-256>\\t<body>``, each with its own ``leadgen_id``; each run reads a range of
lines no other run reads, and says if it had to send one twice ("wrapped")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lib.signatures import META_HEADER
from tools.samples import leadgen_delivery, meta_headers

# The summary of a run as one JSON line (done() hook), and the thread bookkeeping it needs.
WRK_SUMMARY = r"""
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, t in ipairs(threads) do
    wrapped = wrapped + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d},"wrapped":%d}\n',
    summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), wrapped))
end
"""

# Sends a different pre-signed delivery per request. args: <file> <first line> <line count>
# <wrk threads>; thread `tid` takes every nthreads-th line of the range.
WRK_DELIVERIES = r"""
local reqs = {}
local n, i = 0, 0
wrapped = 0

function init(args)
  local path, first, count, nthreads = args[1], tonumber(args[2]), tonumber(args[3]),
    tonumber(args[4])
  local k = 0
  for line in io.lines(path) do
    if k >= first + count then break end
    if k >= first and (k - first) % nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      n = n + 1
      reqs[n] = wrk.format("POST", "/", {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = string.sub(line, 1, tab - 1),
      }, string.sub(line, tab + 1))
    end
    k = k + 1
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end
"""


class LoadError(RuntimeError):
    """wrk is missing or failed; the message says what to do."""


def ensure_wrk() -> str:
    """The path of wrk; installed with apt-get when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LoadError(
            "wrk (the HTTP load generator) is not installed and this user cannot install it. "
            "Install it once: `sudo apt-get install -y wrk` (Debian/Ubuntu), `brew install wrk` "
            "(macOS), or build it from https://github.com/wg/wrk, then run `make bench` again."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("bench: wrk is missing; installing it with apt-get ...", flush=True)
    for command in (
        ["apt-get", "install", "-y", "-q", "wrk"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "wrk"],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if command[1] == "install" and done.returncode == 0:
            break
    found = shutil.which("wrk")
    if not found:
        raise LoadError("`apt-get install -y wrk` failed; install wrk by hand and retry.")
    return found


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].split(" [")[0].strip() if lines else ""


def write_deliveries(path: Path, *, first_id: int, count: int, secret: str) -> None:
    """``count`` signed deliveries, one per line, leadgen ids ``first_id`` onwards."""
    with path.open("wb") as out:
        for i in range(count):
            body = leadgen_delivery(str(first_id + i))
            signature = meta_headers(body, secret=secret)[META_HEADER]
            out.write(signature.encode() + b"\t" + body + b"\n")


@dataclass
class Load:
    """One wrk run: requests completed, 2xx per second, latency percentiles, and what makes
    it invalid (non-2xx answers, socket errors or timeouts, deliveries sent twice)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    wrapped: int


@dataclass(frozen=True)
class Wrk:
    """How to run wrk: its path, client threads and connections."""

    path: str
    threads: int
    connections: int

    def run(self, url: str, script: Path, seconds: int, script_args: list[str]) -> Load:
        command = [
            self.path,
            "-t",
            str(self.threads),
            "-c",
            str(self.connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        if script_args:
            command += ["--", *script_args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if done.returncode != 0 or line is None:
            raise LoadError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        errors = data["errors"]
        seconds_run = data["duration_us"] / 1e6
        return Load(
            requests=data["requests"],
            seconds=round(seconds_run, 3),
            rps=round((data["requests"] - errors["status"]) / seconds_run, 1),
            p50_ms=data["latency_us"]["p50"] / 1000,
            p99_ms=data["latency_us"]["p99"] / 1000,
            non_2xx=errors["status"],
            socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            wrapped=data["wrapped"],
        )


def deliveries_args(path: Path, first: int, count: int, threads: int) -> list[str]:
    """The script arguments of WRK_DELIVERIES for lines ``first`` … ``first + count - 1``."""
    return [str(path), str(first), str(count), str(threads)]
