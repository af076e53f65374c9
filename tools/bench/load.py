"""Load generation with wrk: installing it, the pre-signed requests it sends, one run.

wrk's Lua has no HMAC, so every request is prepared beforehand: one line per request,
``<header value>\\t<body>``, the header being the function's signature or credential
(``X-Hub-Signature-256`` for meta_webhook, ``Calendly-Webhook-Signature`` for calendly_webhook,
``Authorization`` for place_call); each body is distinct (a new leadgen id, a new invitee, a
lead whose call is queued). Each run reads a range of lines no other run reads, and says if it
had to send one twice ("wrapped")."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lib.signatures import CALENDLY_HEADER, META_HEADER
from tools.fakes.calendly_samples import calendly_headers, calendly_invitee_event, encode
from tools.fakes.samples import leadgen_delivery, meta_headers
from tools.stack import debian

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

# Sends a different prepared request per request. args: <file> <first line> <line count>
# <wrk threads> <header name>; thread `tid` takes every nthreads-th line of the range.
WRK_DELIVERIES = r"""
local reqs = {}
local n, i = 0, 0
wrapped = 0

function init(args)
  local path, first, count, nthreads = args[1], tonumber(args[2]), tonumber(args[3]),
    tonumber(args[4])
  local header = args[5]
  local k = 0
  for line in io.lines(path) do
    if k >= first + count then break end
    if k >= first and (k - first) % nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      local headers = {["Content-Type"] = "application/json"}
      headers[header] = string.sub(line, 1, tab - 1)
      n = n + 1
      reqs[n] = wrk.format("POST", "/", headers, string.sub(line, tab + 1))
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
    try:
        return debian.ensure("wrk", "wrk", purpose="the HTTP load generator of `make bench`")
    except debian.MissingProgram as err:
        raise LoadError(f"{err} (macOS: `brew install wrk`)") from None


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].split(" [")[0].strip() if lines else ""


@dataclass(frozen=True)
class Requests:
    """A file of prepared requests: ``count`` lines of ``<value of header>\\t<body>``."""

    path: Path
    header: str
    count: int

    def args(self, first: int, count: int, threads: int) -> list[str]:
        """The script arguments of WRK_DELIVERIES for lines ``first`` … ``first + count - 1``."""
        return [str(self.path), str(first), str(count), str(threads), self.header]


def write_requests(path: Path, header: str, lines: Iterable[tuple[str, bytes]]) -> Requests:
    """Write ``(header value, body)`` pairs, one per line."""
    count = 0
    with path.open("wb") as out:
        for value, body in lines:
            if b"\n" in body or "\t" in value:
                raise ValueError("a prepared request must fit on one line")
            out.write(value.encode() + b"\t" + body + b"\n")
            count += 1
    return Requests(path, header, count)


def meta_deliveries(path: Path, *, first_id: int, count: int, secret: str) -> Requests:
    """``count`` signed leadgen deliveries, leadgen ids ``first_id`` onwards."""

    def lines() -> Iterator[tuple[str, bytes]]:
        for i in range(count):
            body = leadgen_delivery(str(first_id + i))
            yield meta_headers(body, secret=secret)[META_HEADER], body

    return write_requests(path, META_HEADER, lines())


def calendly_deliveries(path: Path, *, first: int, count: int, secret: str) -> Requests:
    """``count`` signed ``invitee.created`` deliveries signed now, each a new invitee whose
    email no lead has (``bench.invitee.<n>@example.org``): each books as a new lead."""
    timestamp = int(time.time())

    def lines() -> Iterator[tuple[str, bytes]]:
        for i in range(first, first + count):
            body = encode(calendly_invitee_event(email=f"bench.invitee.{i}@example.org"))
            yield calendly_headers(body, secret=secret, timestamp=timestamp)[CALENDLY_HEADER], body

    return write_requests(path, CALENDLY_HEADER, lines())


def place_call_requests(path: Path, *, lead_ids: Iterable[str], token: str) -> Requests:
    """One ``{"lead_id": …}`` request per lead (each lead's call queued and due)."""
    auth = f"Bearer {token}"
    lines = ((auth, json.dumps({"lead_id": lead_id}).encode()) for lead_id in lead_ids)
    return write_requests(path, "Authorization", lines)


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
