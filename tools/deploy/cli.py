"""`make deploy`: the migrations, every function live as a Google Cloud Functions (2nd gen) HTTP
function from its own bundle, the sweeps scheduled, and the values to paste into Meta, Calendly
and ElevenLabs.

    python -m tools.deploy [--function NAME] [--dry-run] [--env-file PATH] [--build-dir PATH]

Preflight first (every problem at once, exit 1, nothing changed); then the bundles are built
(build/functions/<name>/), the per-function env files and the sweeps' SQL written
(build/deploy/, mode 0600), and each command is printed, secrets masked, and run from the
repository root; the first that fails stops the deploy (exit 1): every step is idempotent, so
run it again once fixed. ``--dry-run`` (or ``DRY_RUN=1``) builds and writes the same, prints the
same commands and runs none of them: nothing remote changes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tools import ROOT
from tools.build import bundle
from tools.deploy import cost, preflight, smoke
from tools.deploy import plan as deployment
from tools.deploy.settings import (
    SUPABASE_CLI_VARIABLES,
    Paths,
    Settings,
    load_env,
)
from tools.settings import everything
from tools.stack import envfile

_TRUE = {"1", "true", "yes", "on"}


def _provider_hints(p: deployment.Plan) -> list[str]:
    """What to paste where, for the functions deployed."""
    names = {f.name: f.url for f in p.functions}
    env_file = deployment.shown(p.settings.paths.env_file)
    lines = []
    if "meta_webhook" in names:
        lines += [
            "  Meta: App Dashboard > Webhooks > Page > Subscribe to this object:",
            f"    Callback URL  {names['meta_webhook']}",
            f"    Verify token  the value of META_VERIFY_TOKEN in {env_file}",
            "    then Subscribe the field leadgen, and subscribe the Page to the app "
            "(POST /<page id>/subscribed_apps?subscribed_fields=leadgen)",
        ]
    if "calendly_webhook" in names:
        lines += [
            f"  Calendly: make calendly-subscribe ENV=production URL={names['calendly_webhook']}",
            "    (it stores CALENDLY_SIGNING_KEY in supabase/.env: when that changed, "
            "make deploy FUNCTION=calendly_webhook)",
        ]
    if "place_call" in names:
        lines += [
            "  ElevenLabs: a workspace admin creates a webhook (HMAC) in workspace settings > "
            "Webhooks:",
            f"    URL     {names['place_call']}/webhook",
            "    Secret  ElevenLabs shows it once: put it in ELEVENLABS_WEBHOOK_SECRET in "
            f"{env_file} (then make deploy FUNCTION=place_call)",
            "    then select it in Agents > Settings > Post-call webhook (events: transcript and "
            "call initiation failure), and turn on its retries: make elevenlabs-webhook "
            "ENV=production",
        ]
    return lines


def _python_for(runtime: str) -> tuple[str | None, str | None]:
    """The interpreter that compiles the bundles' bytecode for ``runtime`` (``python312``), and
    a note when there is none of its version here."""
    match = re.fullmatch(r"python3([0-9]+)", runtime)
    found = bundle.python(f"3.{match.group(1)}") if match else None
    if found:
        return found, None
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return None, (
        f"bytecode compiled by Python {here}: no interpreter of {runtime} here (GCF_PYTHON, "
        "python3.N on PATH, pyenv), so the runtime compiles the modules at first import"
    )


def _write(files: Mapping[Path, str]) -> None:
    for path, text in files.items():
        envfile.replace(path, text)  # mode 0600: secrets


SMOKE_TIMEOUT_SECONDS = 60.0  # a function's first request after a deploy is a cold start


def smoke_probes(p: deployment.Plan, settings: Settings) -> list[smoke.Probe]:
    return smoke.probes(
        {f.name: f.function for f in p.functions},
        {f.name: f.url for f in p.functions},
        verify_token=settings.get("META_VERIFY_TOKEN"),
        token=settings.get("INTERNAL_TOKEN").split(",")[0].strip(),
    )


def smoke_test(found: list[smoke.Probe]) -> list[smoke.Row]:
    """The probes against what was just deployed (the first request may meet a cold start)."""
    with httpx.Client(timeout=SMOKE_TIMEOUT_SECONDS) as client:
        return smoke.run(found, client)


def call_rpc(settings: Settings, function: str, params: dict[str, str]) -> str | None:
    """Call ``function`` through the project's database API (supabase-py's PostgREST client, as
    the functions do); the problem, in words, or None."""
    from lib.db import Database
    from lib.errors import AppError

    try:
        Database(settings.get("SUPABASE_URL"), settings.get("SUPABASE_SERVICE_ROLE_KEY")).rpc(
            function, params
        )
    except AppError as err:
        return err.message
    return None


def run(
    settings: Settings,
    names: list[str],
    *,
    dry_run: bool,
    out: Callable[[str], None],
    environ: Mapping[str, str],
) -> int:
    every = bundle.function_names()
    p = deployment.build(settings, names, every)
    # Every declared secret, whichever function or tool reads it, and the deploy's own.
    mask = deployment.Masker(
        settings.secret_values([v.name for v in everything().variables() if v.secret])
    )

    def say(line: str = "") -> None:
        out(mask(line))

    say(
        f"deploy {', '.join(f.name for f in p.functions)} to GCP project "
        f"{settings.project or '<GCP_PROJECT>'}, region {settings.region or '<GCP_REGION>'}"
        + (": DRY RUN, nothing remote changes" if dry_run else "")
    )
    problems, notes = preflight.check(settings, p, dry_run=dry_run, environ=environ)
    for note in notes:
        say(f"note: {note}")
    if problems:
        say(f"preflight: {len(problems)} problem{'s' if len(problems) > 1 else ''}:")
        for problem in problems:
            say(f"  - {problem}")
        if not dry_run:
            say("nothing was changed.")
            return 1
        say("(the real run stops here; the dry run goes on to show the rest)")
    else:
        say("preflight: ok")

    by_runtime: dict[str, list[str]] = {}
    for f in p.functions:
        by_runtime.setdefault(settings.setting("GCF_RUNTIME", f.name), []).append(f.name)
    for runtime, names_of_runtime in sorted(by_runtime.items()):
        python, python_note = _python_for(runtime)
        if python_note:
            say(f"note: {python_note}")
        for path in bundle.build_all(names_of_runtime, settings.paths.bundles, python=python):
            say(f"built {deployment.shown(path)}")
    _write(p.files)
    say(f"wrote {', '.join(deployment.shown(path) for path in p.files)} (mode 0600)")

    # The Supabase CLI reads these from its environment; supabase/.env may hold them.
    supabase_env = {k: settings.get(k) for k in SUPABASE_CLI_VARIABLES if settings.get(k)}
    for step in p.steps:
        say("")
        if step.rpc is not None:
            say(f"» database API: POST {settings.get('SUPABASE_URL')}/rest/v1/rpc/{step.rpc[0]}")
        else:
            say(f"$ {step.shell()}")
        for line in step.notes:
            say(f"    {line}")
        if dry_run:
            continue
        if step.rpc is not None:
            problem = call_rpc(settings, *step.rpc)
            if problem:
                say(
                    f"deploy stopped: {step.rpc[0]} failed ({problem}); nothing after it ran. "
                    "Fix it and run `make deploy` again (every step is idempotent)."
                )
                return 1
            continue
        # The executable preflight found, whatever the child's PATH would find first.
        argv = [settings.which(step.argv[0]) or step.argv[0], *step.argv[1:]]
        env = {**environ, **(supabase_env if step.argv[0] == settings.supabase else {})}
        if step.unless is not None:
            check = [settings.which(step.unless[0]) or step.unless[0], *step.unless[1:]]
            found = subprocess.run(
                check, cwd=ROOT, env=env, check=False, capture_output=True, stdin=subprocess.DEVNULL
            )
            if found.returncode == 0 and step.unless_prints is None:
                say("    (exists: skipped)")
                continue
            if found.returncode == 0 and found.stdout == step.unless_prints.encode():
                say("    (unchanged: skipped)")
                continue
        result = subprocess.run(
            argv,
            cwd=ROOT,
            env=env,
            check=False,
            input=step.stdin.encode() if step.stdin is not None else None,
        )
        if result.returncode != 0:
            say(
                f"deploy stopped: that command exited {result.returncode}; nothing after it ran. "
                "Fix what it says and run `make deploy` again (every step is idempotent)."
            )
            return 1

    found = smoke_probes(p, settings)
    smoke_failed = False
    say("")
    if dry_run:
        say(f"Smoke test, after a real deploy ({len(found)} probes):")
        for probe in found:
            say(f"  {probe.function:<18} {probe.what:<28} expects {probe.expected}")
    else:
        rows = smoke_test(found)
        failed = [row for row in rows if not row.ok]
        say(f"Smoke test: {len(rows) - len(failed)} of {len(rows)} probes as expected")
        for line in smoke.table(rows):
            say(line)
        smoke_failed = bool(failed)

    say("")
    say("Functions:")
    for f in sorted(p.functions, key=lambda f: f.name):
        say(f"  {f.name:<18} {f.url}")
    if p.sweeps:
        jobs = ", ".join(deployment.sweep_job(f.name) for f in p.sweeps)
        say(
            f"Sweeps: pg_cron jobs {jobs}, every minute; `make doctor ENV=production` says "
            "whether they are answered 200 (pg_net's net._http_response: cron's own run "
            "details say succeeded even when every POST gets a 401)"
        )
    warm = [
        (
            f.name,
            int(settings.setting("GCF_MIN_INSTANCES", f.name)),
            settings.setting("GCF_MEMORY", f.name),
        )
        for f in sorted(p.functions, key=lambda f: f.name)
    ]
    warm = [(name, n, memory) for name, n, memory in warm if n]
    if warm:
        ceiling = sum(cost.monthly_ceiling(memory, n) for _, n, memory in warm)
        say(
            "Minimum instances (no cold start for the first lead after a quiet night): "
            + ", ".join(f"{name} {n} x {memory}" for name, n, memory in warm)
            + f": at most ${ceiling:.2f} a month ({cost.SOURCE}; an idle minimum instance is "
            "billed at a lower rate). GCF_MIN_INSTANCES=0 (or GCF_MIN_INSTANCES_<FUNCTION>=0) "
            "pays nothing while idle, at the price of a cold start (about 1.2 s each at 512Mi) "
            "for the first lead after a quiet period."
        )
    say("Paste into the providers:")
    for line in _provider_hints(p):
        say(line)
    say(
        "Then check production: make doctor ENV=production (it reads supabase/.env and the "
        "database at SUPABASE_DB_URL)"
    )
    if dry_run:
        say("DRY RUN: nothing was deployed.")
    if smoke_failed:
        say("The deploy is done, but the smoke test failed: fix each MISMATCH above.")
    return 1 if problems or smoke_failed else 0


def _print(line: str) -> None:
    print(line, flush=True)  # before the output of the commands it runs


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    paths: Paths | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.deploy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--function", help="deploy this function only")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.add_argument("--env-file", type=Path, help="default: supabase/.env")
    parser.add_argument("--build-dir", type=Path, help="default: build/")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    out = out or _print
    paths = paths or Paths()
    if args.env_file:
        paths = Paths(args.env_file.resolve(), paths.build, paths.project_ref)
    if args.build_dir:
        paths = Paths(paths.env_file, args.build_dir.resolve(), paths.project_ref)
    every = bundle.function_names()
    if args.function and args.function not in every:
        out(f"deploy: no function {args.function!r}; the functions are {', '.join(every)}")
        return 2
    dry_run = args.dry_run or environ.get("DRY_RUN", "").strip().lower() in _TRUE
    settings = Settings(load_env(paths, environ), paths)
    names = [args.function] if args.function else every
    return run(settings, names, dry_run=dry_run, out=out, environ=environ)


if __name__ == "__main__":
    sys.exit(main())
