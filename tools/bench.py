"""`make bench`: meta_webhook against a bare functions-framework function, side by side.

Both are served the same way, the way the production runtime serves them::

    functions-framework --target <name> --source <path>/main.py --host 127.0.0.1 --port <free>

(gunicorn, one process per function, the same ``WORKERS``/``THREADS`` for both), as a subprocess
with cwd and ``PYTHONPATH`` = the repository root. meta_webhook runs with the env of the embedded
stack (tools/stack.py: Postgres with the migrations, the PostgREST stand-in, the Graph fake), so
each delivery really does its two RPCs and one Graph fetch.

Measured, for each:

- **cold start**: process launch → first 200 (hello: ``GET /``; meta_webhook: a real signed
  leadgen delivery, not the GET handshake); ``--cold-runs`` launches each, interleaved, after one
  discarded priming launch each; the median is reported;
- **throughput and latency**: ``wrk`` (one client thread, ``--connections`` 16) for
  ``--duration`` seconds after ``--warmup`` seconds; every meta_webhook request is a distinct
  pre-signed delivery (unique ``leadgen_id``, valid ``X-Hub-Signature-256``) read by a Lua script
  from a file, since wrk's Lua has no HMAC;
- **database round trips per delivery**: calls of the RPC entry points (``meta_ingest``,
  ``meta_complete``, ``meta_claim_due`` from ``pg_stat_user_functions`` with
  ``track_functions = 'pl'``, plus error-log RPCs from ``integration_logs``) over the leads the
  load phase created;
- **CPU per request** (Linux): of the function, the stand-in, Postgres, the Graph fake, wrk and
  the whole machine during the measured run, so a saturated or disturbed machine is visible.

wrk is installed with apt-get when it is missing and we are root; otherwise the benchmark says
how to install it and exits 2. Results and the method are discussed in docs/PERFORMANCE.md.

Everything listens on and talks to 127.0.0.1 only; every loop is bounded in count and time.
The benchmark reports, it is not a test: the exit status is 0 whatever the acceptance lines say
(1 when the measurement itself is invalid: errors, duplicates; 2 when it could not run).

    python -m tools.bench [--duration 10] [--warmup 2] [--cold-runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib.signatures import sign_meta
from tools import stack as local_stack

ROOT = local_stack.ROOT
HELLO_SOURCE = ROOT / "tools" / "bench_hello" / "main.py"
META_SOURCE = ROOT / "functions" / "meta_webhook" / "main.py"
PAGE_ID = "138124712925158"
FORM_ID = "172036835026334"
# Each purpose gets its own leadgen id range, so no id is ever sent twice in one run.
COLD_IDS = 3_000_000_000_000_000
LOAD_IDS = 4_000_000_000_000_000
RPC_FUNCTIONS = ("meta_ingest", "meta_complete", "meta_claim_due")

TARGET_RPS_RATIO = 0.25
TARGET_COLD_RATIO = 1.5
TARGET_RPC_PER_DELIVERY = 2.0

# wrk scripts. COMMON prints the summary as one JSON line; META sends a different pre-signed
# delivery per request (read from a file: "<signature>\t<body>" per line).
WRK_COMMON = r"""
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
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d},"wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, wrapped))
end
"""

WRK_META = r"""
local reqs = {}
local n, i = 0, 0
wrapped = 0

-- args: <bodies file> <first line> <line count> <wrk threads>; thread `tid` takes every
-- nthreads-th line of its range, so no two threads send the same delivery.
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


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why and what to do."""


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    wrapped: int


@dataclass
class Result:
    name: str
    cold_start_ms: list[float] = field(default_factory=list)
    cold_start_median_ms: float = 0.0
    warmup: Load | None = None
    load: Load | None = None
    # CPU milliseconds per request of each process during the measured run (Linux /proc).
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    # CPU seconds of the busiest processes outside the benchmark during the measured run.
    cpu_elsewhere: list[tuple[str, float]] = field(default_factory=list)
    db: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------
# Setup


def ensure_wrk() -> str:
    """The path of wrk; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(
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
        raise BenchError("`apt-get install -y wrk` failed; install wrk by hand and retry.")
    return found


def delivery(leadgen_id: int) -> bytes:
    """One leadgen change, shaped as Meta delivers it (compact JSON, no newline)."""
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": 1630087927,
                    "changes": [
                        {
                            "field": "leadgen",
                            "value": {
                                "leadgen_id": str(leadgen_id),
                                "page_id": PAGE_ID,
                                "form_id": FORM_ID,
                                "created_time": 1630087926,
                            },
                        }
                    ],
                }
            ],
        },
        separators=(",", ":"),
    ).encode()


def write_bodies(path: Path, count: int, secret: str) -> None:
    """``count`` signed deliveries, one per line, each with its own leadgen_id."""
    with path.open("wb") as out:
        for i in range(count):
            body = delivery(LOAD_IDS + i)
            out.write(sign_meta(body, secret=secret).encode() + b"\t" + body + b"\n")


def server_env(base: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        **base,
        "PYTHONPATH": str(ROOT),
        "WORKERS": str(args.workers),
        "THREADS": str(args.threads),
    }


@contextlib.contextmanager
def served(
    name: str, source: Path, port: int, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``functions-framework --target name --source source`` on 127.0.0.1:port, ended after."""
    executable = Path(sys.executable).parent / "functions-framework"
    command = [
        str(executable) if executable.exists() else "functions-framework",
        "--target",
        name,
        "--source",
        str(source),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Its own session: the gunicorn arbiter and its worker, nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


# ------------------------------------------------------------------------------------------
# Probes


def request_status(
    port: int,
    method: str,
    path: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> int | None:
    """The status of one request, or None when nothing listens yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        return None
    finally:
        conn.close()


def first_200(
    process: subprocess.Popen[bytes], probe: Callable[[], int | None], *, timeout: float, what: str
) -> None:
    """Repeat ``probe`` (every 5 ms while nothing listens) until it answers 200."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with status {process.returncode} before answering")
        last = probe()
        if last == 200:
            return
        time.sleep(0.005 if last is None else 0.05)
    raise BenchError(f"{what} did not answer 200 within {timeout:.0f} s (last status: {last})")


class Probes:
    """The first request of each target: GET for hello, a fresh signed delivery for meta."""

    def __init__(self, env: dict[str, str]) -> None:
        self.secret = env["META_APP_SECRET"]
        self.verify_token = env["META_VERIFY_TOKEN"]
        self.next_id = COLD_IDS

    def hello(self, port: int) -> Callable[[], int | None]:
        return lambda: request_status(port, "GET")

    def meta(self, port: int) -> Callable[[], int | None]:
        def probe() -> int | None:
            self.next_id += 1
            body = delivery(self.next_id)
            return request_status(
                port,
                "POST",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign_meta(body, secret=self.secret),
                },
            )

        return probe

    def handshake(self, port: int) -> Callable[[], int | None]:
        path = f"/?hub.mode=subscribe&hub.verify_token={self.verify_token}&hub.challenge=bench"
        return lambda: request_status(port, "GET", path)


# ------------------------------------------------------------------------------------------
# CPU accounting (Linux): where the machine's CPU goes during a measured run


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class ProcStat:
    ppid: int
    name: str
    own: float  # CPU seconds of the process itself (all its threads)
    children: float  # CPU seconds of its children that it has reaped


def processes() -> dict[int, ProcStat]:
    """Every live process, from /proc/<pid>/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # After "pid (comm) ": state ppid ... utime(14) stime(15) cutime(16) cstime(17).
        found[int(entry.name)] = ProcStat(
            ppid=int(fields[1]),
            name=text[text.index("(") + 1 : text.rindex(")")],
            own=(int(fields[11]) + int(fields[12])) / _TICK,
            children=(int(fields[13]) + int(fields[14])) / _TICK,
        )
    return found


def tree(root: int, procs: dict[int, ProcStat]) -> set[int]:
    """``root`` and its live descendants."""
    members, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in members or pid not in procs:
            continue
        members.add(pid)
        todo.extend(child for child, stat in procs.items() if stat.ppid == pid)
    return members


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: busy = all but idle, iowait and steal.
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:7]) - idle) / _TICK


@dataclass
class CpuSample:
    trees: dict[str, float]  # CPU seconds per named tree (live members + what they reaped)
    procs: dict[int, ProcStat]
    members: set[int]


class CpuMeter:
    """CPU seconds per named process tree (plus wrk, via this process's reaped children), the
    machine's total, and which other processes used CPU meanwhile."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.enabled = Path("/proc/stat").exists()
        self.others: list[tuple[str, float]] = []

    def read(self) -> CpuSample | None:
        if not self.enabled:
            return None
        import resource

        procs = processes()
        trees, members = {}, {os.getpid()}
        for name, root in self.roots.items():
            pids = tree(root, procs)
            members |= pids
            trees[name] = sum(procs[p].own + procs[p].children for p in pids)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        trees["wrk (client)"] = usage.ru_utime + usage.ru_stime
        trees["machine total"] = machine_busy()
        return CpuSample(trees, procs, members)

    def per_request(
        self, before: CpuSample | None, after: CpuSample | None, requests: int
    ) -> dict[str, float]:
        if before is None or after is None or not requests:
            return {}
        per = {
            name: (after.trees[name] - before.trees[name]) * 1000 / requests
            for name in before.trees
        }
        named = sum(v for k, v in per.items() if k != "machine total")
        per["other"] = max(per["machine total"] - named, 0.0)
        # The busiest processes outside the benchmark's trees (wrk is reaped, so not listed).
        used = []
        for pid, stat in after.procs.items():
            if pid in after.members or stat.name == "wrk":
                continue
            previous = before.procs.get(pid)
            delta = stat.own - (previous.own if previous else 0.0)
            if delta > 0:
                used.append((f"{stat.name}[{pid}]", round(delta, 2)))
        self.others = sorted(used, key=lambda item: -item[1])[:5]
        return {name: round(value, 3) for name, value in per.items()}


def postmaster_pid(stack: local_stack.Stack) -> int | None:
    try:
        return int((stack.postgres.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stack_roots(stack: local_stack.Stack) -> dict[str, int]:
    labels = {"tools.rest_standin": "PostgREST stand-in", "tools.graph_fake": "Graph fake"}
    roots = {}
    for process in stack.processes:
        args = process.args if isinstance(process.args, list) else [process.args]
        for module, label in labels.items():
            if module in map(str, args):
                roots[label] = process.pid
    pg = postmaster_pid(stack)
    if pg is not None:
        roots["Postgres"] = pg
    return roots


# ------------------------------------------------------------------------------------------
# Database counters


class DbCounters:
    """Superuser reads of the stack's database: RPC call counts and rows."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("alter system set track_functions = 'pl'")
        self.conn.execute("select pg_reload_conf()")

    def close(self) -> None:
        self.conn.close()

    def flush_standin_stats(self) -> None:
        """End the stand-in's idle connections: a backend reports its pending function
        statistics when it exits (otherwise up to 10 s later). The stand-in's pool reconnects
        on its next request."""
        self.conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where usename = 'authenticator' and pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = self.conn.execute(
                "select count(*) from pg_stat_activity where usename = 'authenticator'"
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)
        self.conn.execute("select pg_stat_clear_snapshot()")

    def snapshot(self) -> dict[str, int]:
        self.conn.execute("select pg_stat_clear_snapshot()")
        calls: dict[str, int] = dict(
            self.conn.execute(
                "select funcname, calls from pg_stat_user_functions where schemaname = 'public'"
            ).fetchall()
        )
        counts = {f"calls.{name}": int(calls.get(name, 0)) for name in RPC_FUNCTIONS}
        row = self.conn.execute(
            "select (select count(*) from public.leads), "
            "(select count(*) from public.leads where status = 'fetched'), "
            "(select count(*) from public.leads where status = 'fetch_pending'), "
            "(select count(*) from public.integration_logs), "
            "(select count(*) from public.integration_logs where event like '%.request')"
        ).fetchone()
        assert row is not None
        counts.update(
            leads=row[0], leads_new=row[1], leads_pending=row[2], logs=row[3], error_logs=row[4]
        )
        return counts

    def wait_drained(self, timeout: float = 10.0) -> None:
        """Let the requests still in flight when wrk stopped finish (bounded)."""
        deadline = time.monotonic() + timeout
        previous = -1
        while time.monotonic() < deadline:
            row = self.conn.execute(
                "select count(*), count(*) filter (where status = 'fetch_pending') "
                "from public.leads"
            ).fetchone()
            assert row is not None
            if row[1] == 0 and row[0] == previous:
                return
            previous = row[0]
            time.sleep(0.25)


def db_summary(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    delta = {key: after[key] - before[key] for key in before}
    deliveries = delta["leads"]
    rpc_calls = sum(delta[f"calls.{name}"] for name in RPC_FUNCTIONS) + delta["error_logs"]
    return {
        "deliveries": deliveries,
        "leads_fetched": delta["leads_new"],
        "leads_still_pending": after["leads_pending"],
        "rpc_calls": rpc_calls,
        "rpc_calls_by_function": {
            **{name: delta[f"calls.{name}"] for name in RPC_FUNCTIONS},
            "log_event (error path)": delta["error_logs"],
        },
        "rpc_per_delivery": rpc_calls / deliveries if deliveries else None,
        "integration_logs_rows": delta["logs"],
    }


# ------------------------------------------------------------------------------------------
# Measurements


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    args: argparse.Namespace,
    seconds: float,
    script_args: list[str],
) -> Load:
    command = [
        wrk,
        "-t",
        str(args.wrk_threads),
        "-c",
        str(args.connections),
        "-d",
        f"{seconds:g}s",
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
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    lat = data["latency_us"]
    errors = data["errors"]
    seconds_run = data["duration_us"] / 1e6
    ok = data["requests"] - errors["status"]
    return Load(
        requests=data["requests"],
        seconds=round(seconds_run, 3),
        rps=round(ok / seconds_run, 1) if seconds_run else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=round(lat["mean"] / 1000, 3),
        max_ms=lat["max"] / 1000,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        wrapped=data["wrapped"],
    )


def cold_starts(
    args: argparse.Namespace,
    probes: Probes,
    hello_env: dict[str, str],
    meta_env: dict[str, str],
    logs: Path,
    results: dict[str, Result],
) -> None:
    targets = {
        "hello": ("hello", HELLO_SOURCE, hello_env, probes.hello),
        "meta_webhook": ("meta_webhook", META_SOURCE, meta_env, probes.meta),
    }
    for run in range(args.cold_runs + 1):
        for key, (name, source, env, make_probe) in targets.items():
            port = local_stack.free_port()
            started = time.perf_counter()
            with served(name, source, port, env, logs / f"{key}.cold.log") as process:
                first_200(process, make_probe(port), timeout=60, what=f"{key} (cold start)")
                elapsed_ms = (time.perf_counter() - started) * 1000
            if run == 0:
                continue  # priming launch: warms the page cache and the stack's pools
            results[key].cold_start_ms.append(round(elapsed_ms, 1))
            print(
                f"bench: cold start {run}/{args.cold_runs} {key}: {elapsed_ms:.0f} ms", flush=True
            )
    for result in results.values():
        result.cold_start_median_ms = round(statistics.median(result.cold_start_ms), 1)


def load_hello(
    args: argparse.Namespace,
    wrk: str,
    probes: Probes,
    env: dict[str, str],
    work: Path,
    result: Result,
) -> None:
    script = work / "hello.lua"
    script.write_text(WRK_COMMON)
    port = local_stack.free_port()
    with served("hello", HELLO_SOURCE, port, env, work / "logs" / "hello.load.log") as process:
        first_200(process, probes.hello(port), timeout=60, what="hello")
        url = f"http://127.0.0.1:{port}/"
        if args.warmup:
            result.warmup = run_wrk(wrk, url, script, args, args.warmup, [])
        meter = CpuMeter({"function (gunicorn)": process.pid})
        cpu_before = meter.read()
        result.load = run_wrk(wrk, url, script, args, args.duration, [])
        result.cpu_ms_per_request = meter.per_request(
            cpu_before, meter.read(), result.load.requests
        )
        result.cpu_elsewhere = meter.others
    print(f"bench: hello load: {result.load.rps:.0f} rps", flush=True)


def load_meta(
    args: argparse.Namespace,
    wrk: str,
    probes: Probes,
    env: dict[str, str],
    work: Path,
    counters: DbCounters,
    roots: dict[str, int],
    result: Result,
) -> None:
    script = work / "meta.lua"
    script.write_text(WRK_COMMON + WRK_META)
    bodies = work / "bodies.txt"
    write_bodies(bodies, args.bodies, env["META_APP_SECRET"])
    warm_count = int(args.bodies * args.warmup / (args.warmup + args.duration))
    port = local_stack.free_port()
    with served(
        "meta_webhook", META_SOURCE, port, env, work / "logs" / "meta_webhook.load.log"
    ) as process:
        first_200(process, probes.handshake(port), timeout=60, what="meta_webhook")
        counters.flush_standin_stats()
        before = counters.snapshot()
        url = f"http://127.0.0.1:{port}/"
        nthreads = str(args.wrk_threads)
        if args.warmup:
            result.warmup = run_wrk(
                wrk, url, script, args, args.warmup, [str(bodies), "0", str(warm_count), nthreads]
            )
            if result.warmup.wrapped:
                raise BenchError("the warm-up ran out of distinct deliveries: raise --bodies")
        meter = CpuMeter({"function (gunicorn)": process.pid, **roots})
        cpu_before = meter.read()
        result.load = run_wrk(
            wrk,
            url,
            script,
            args,
            args.duration,
            [str(bodies), str(warm_count), str(args.bodies - warm_count), nthreads],
        )
        result.cpu_ms_per_request = meter.per_request(
            cpu_before, meter.read(), result.load.requests
        )
        result.cpu_elsewhere = meter.others
        counters.wait_drained()
        counters.flush_standin_stats()
        result.db = db_summary(before, counters.snapshot())
    print(f"bench: meta_webhook load: {result.load.rps:.0f} rps", flush=True)


# ------------------------------------------------------------------------------------------
# Report


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def acceptance(hello: Result, meta: Result) -> list[dict[str, Any]]:
    assert hello.load is not None and meta.load is not None and meta.db is not None
    rps_ratio = ratio(meta.load.rps, hello.load.rps)
    cold_ratio = ratio(meta.cold_start_median_ms, hello.cold_start_median_ms)
    per = meta.db["rpc_per_delivery"]
    calls = meta.db["rpc_calls_by_function"]
    return [
        {
            "check": f"meta_webhook rps >= {TARGET_RPS_RATIO} x bare",
            "value": rps_ratio,
            "passed": rps_ratio is not None and rps_ratio >= TARGET_RPS_RATIO,
            "detail": f"{meta.load.rps:.0f} / {hello.load.rps:.0f} rps",
        },
        {
            "check": f"meta_webhook cold start <= {TARGET_COLD_RATIO} x bare",
            "value": cold_ratio,
            "passed": cold_ratio is not None and cold_ratio <= TARGET_COLD_RATIO,
            "detail": f"{meta.cold_start_median_ms:.0f} / {hello.cold_start_median_ms:.0f} ms "
            "(medians)",
        },
        {
            "check": f"DB round trips per delivery <= {TARGET_RPC_PER_DELIVERY:g}",
            "value": per,
            "passed": per is not None and 0 < per <= TARGET_RPC_PER_DELIVERY,
            "detail": f"{meta.db['rpc_calls']} RPCs ("
            + ", ".join(f"{k} {v}" for k, v in calls.items() if v)
            + f") for {meta.db['deliveries']} deliveries",
        },
    ]


def context(results: dict[str, Result]) -> list[str]:
    """What the figures mean on this machine: saturation, and the function's own CPU cost."""
    lines = [
        f"cold start {name}: median {r.cold_start_median_ms:.0f} ms, range "
        f"{min(r.cold_start_ms):.0f}-{max(r.cold_start_ms):.0f} ms over "
        f"{len(r.cold_start_ms)} launches"
        for name, r in results.items()
        if r.cold_start_ms
    ]
    nproc = os.cpu_count() or 1
    for name, r in results.items():
        total = r.cpu_ms_per_request.get("machine total")
        if r.load is not None and total is not None:
            busy = total * r.load.rps / 1000 / nproc
            lines.append(
                f"{name}: the machine's {nproc} CPUs were {busy:.0%} busy, "
                f"{total:.2f} CPU ms per request in all"
            )
            other = r.cpu_ms_per_request.get("other", 0.0)
            if other > 0.1 * total:
                busiest = ", ".join(f"{p} {sec:.1f} s" for p, sec in r.cpu_elsewhere[:3])
                lines.append(
                    f"WARNING {name}: {other / total:.0%} of the CPU went to processes outside "
                    f"the benchmark or the kernel ({busiest or 'none listed'}); this run's "
                    "figures are disturbed"
                )
    fn = "function (gunicorn)"
    hello_cpu = results["hello"].cpu_ms_per_request.get(fn)
    meta_cpu = results["meta_webhook"].cpu_ms_per_request.get(fn)
    if hello_cpu and meta_cpu:
        lines.append(
            f"function process alone: {hello_cpu:.2f} vs {meta_cpu:.2f} CPU ms per request, i.e. "
            f"one dedicated CPU would serve ~{1000 / hello_cpu:.0f} vs ~{1000 / meta_cpu:.0f} "
            f"rps ({hello_cpu / meta_cpu:.2f}x bare) if nothing else shared it"
        )
    return lines


def problems(results: dict[str, Result]) -> list[str]:
    """What makes the measurement itself invalid."""
    found = []
    for name, result in results.items():
        if result.warmup is not None and (result.warmup.non_2xx or result.warmup.socket_errors):
            found.append(
                f"{name}: the warm-up had {result.warmup.non_2xx} non-2xx responses "
                f"and {result.warmup.socket_errors} socket errors"
            )
        load = result.load
        if load is None:
            continue
        if load.non_2xx:
            found.append(f"{name}: {load.non_2xx} responses were not 2xx")
        if load.socket_errors:
            found.append(f"{name}: {load.socket_errors} socket errors/timeouts")
        if load.wrapped:
            found.append(
                f"{name}: ran out of distinct deliveries ({load.wrapped} wraps); raise --bodies"
            )
    db = results["meta_webhook"].db
    if db is not None:
        if db["leads_still_pending"]:
            found.append(
                f"meta_webhook: {db['leads_still_pending']} leads still fetch_pending "
                "(Graph fetch or meta_complete failed)"
            )
        if db["deliveries"] == 0:
            found.append("meta_webhook: the load phase created no leads")
    return found


def table(results: dict[str, Result]) -> str:
    hello = results["hello"]
    header = (
        f"{'name':<14}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'cold start ms':>15}"
        f"{'rps vs bare':>13}{'cold vs bare':>14}"
    )
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        assert r.load is not None and hello.load is not None
        rps_ratio = ratio(r.load.rps, hello.load.rps) or 0.0
        cold_ratio = ratio(r.cold_start_median_ms, hello.cold_start_median_ms) or 0.0
        lines.append(
            f"{name:<14}{r.load.rps:>9.0f}{r.load.p50_ms:>9.2f}{r.load.p99_ms:>9.2f}"
            f"{r.cold_start_median_ms:>15.0f}{rps_ratio:>12.2f}x{cold_ratio:>13.2f}x"
        )
    return "\n".join(lines)


def cpu_table(results: dict[str, Result]) -> str:
    """CPU milliseconds per request by process, for each target (measured run only)."""
    names: list[str] = []
    for r in results.values():
        names += [n for n in r.cpu_ms_per_request if n not in names]
    if not names:
        return "(CPU accounting needs Linux /proc)"
    order = [n for n in names if n not in ("other", "machine total")] + ["other", "machine total"]
    lines = [f"{'CPU ms per request':<24}" + "".join(f"{name:>14}" for name in results)]
    for name in order:
        cells = [r.cpu_ms_per_request.get(name) for r in results.values()]
        lines.append(
            f"{name:<24}"
            + "".join(f"{cell:>14.3f}" if cell is not None else f"{'-':>14}" for cell in cells)
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    wrk = shutil.which("wrk")
    version = ""
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        version = (
            (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else ""
        )
    from importlib.metadata import version as dist_version

    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "commit": git,
        "platform": platform.platform(),
        "wrk": version,
        "functions_framework": dist_version("functions-framework"),
        "gunicorn": dist_version("gunicorn"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrency (16)")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold starts per target (5)")
    parser.add_argument("--workers", type=int, default=1, help="WORKERS for both servers (1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=(os.cpu_count() or 1) * 4,
        help="THREADS for both servers (functions-framework's default: 4/CPU)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk client threads (1)")
    parser.add_argument(
        "--bodies",
        type=int,
        default=50_000,
        help="pre-signed distinct deliveries for the meta load (50000)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, stack)")
    args = parser.parse_args(argv)
    bounds = {
        "duration": (1, 120),
        "warmup": (0, 30),
        "connections": (1, 256),
        "cold_runs": (1, 20),
        "workers": (1, 16),
        "threads": (1, 64),
        "wrk_threads": (1, 8),
        "bodies": (1000, 1_000_000),
    }
    for name, (low, high) in bounds.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` must still stop the stack and the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        wrk = ensure_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    (work / "logs").mkdir()
    results = {"hello": Result("hello"), "meta_webhook": Result("meta_webhook")}
    stack = None
    counters = None
    started = time.monotonic()
    try:
        print(f"bench: starting the embedded stack in {work} ...", flush=True)
        stack = local_stack.start(work / "stack", environ={})
        counters = DbCounters(stack.env["DATABASE_URL"])
        hello_env = server_env({}, args)
        meta_env = server_env(stack.env, args)
        probes = Probes(stack.env)
        cold_starts(args, probes, hello_env, meta_env, work / "logs", results)
        load_hello(args, wrk, probes, hello_env, work, results["hello"])
        load_meta(
            args, wrk, probes, meta_env, work, counters, stack_roots(stack), results["meta_webhook"]
        )
    except (BenchError, local_stack.StackError) as exc:
        print(f"bench: {exc}\nbench: logs are in {work / 'logs'}", file=sys.stderr)
        args.keep = True
        return 2
    finally:
        if counters is not None:
            counters.close()
        if stack is not None:
            stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    checks = acceptance(results["hello"], results["meta_webhook"])
    invalid = problems(results)
    meta_db = results["meta_webhook"].db or {}
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info = machine()
    print()
    print(
        f"commit {info['commit']}; machine: {info['nproc']} CPUs, Python {info['python']}, "
        f"{info['platform']}; "
        f"functions-framework {info['functions_framework']}, gunicorn {info['gunicorn']}; "
        f"client {info['wrk']}"
    )
    print()
    print(table(results))
    print()
    print(cpu_table(results))
    print()
    notes = context(results)
    for line in notes:
        print(line)
    print()
    print(
        f"concurrency {args.connections}, {args.duration:g} s after {args.warmup:g} s warm-up; "
        f"cold start = median of {args.cold_runs} launches; WORKERS={args.workers} "
        f"THREADS={args.threads} PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')}; "
        f"meta_webhook: {meta_db.get('deliveries')} distinct signed "
        f"deliveries in the load phase, {meta_db.get('leads_fetched')} fetched from the Graph "
        "fake"
    )
    print()
    for check in checks:
        print(
            f"{'PASS' if check['passed'] else 'FAIL'}  {check['check']}: "
            f"{check['value']}  ({check['detail']})"
        )
    for problem in invalid:
        print(f"INVALID  {problem}")
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "config": config,
                    "results": {name: asdict(r) for name, r in results.items()},
                    "acceptance": checks,
                    "context": notes,
                    "invalid": invalid,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"bench: results written to {args.json}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
