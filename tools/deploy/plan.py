"""The deployment as data: each function with exactly the variables it reads, the files the
deploy generates (per-function env files, the sweeps' SQL), and the commands, in order. Nothing
here runs anything, so a dry run and a real run are the same plan.

1. ``supabase db push``: the migrations.
2. ``gcloud services enable``: the APIs a 2nd gen deploy uses (idempotent).
3. ``gcloud functions deploy`` per function, a function before those that call it (a variable
   named ``<FUNCTION>_URL``, such as meta_webhook's ``PLACE_CALL_URL``, is set to that function's
   URL, which is known before it exists: ``https://<region>-<project>.cloudfunctions.net/<name>``).
   ``--env-vars-file`` replaces every variable the function had, so none is left behind.
4. ``supabase db query --file``: the sweeps (every function with a ``POST /sweep`` route),
   scheduled every minute by pg_cron on the Supabase project, sent by pg_net with
   ``Authorization: Bearer $INTERNAL_TOKEN`` read from Supabase Vault at each run
   (docs/ARCHITECTURE.md, decisions 8 and 9).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tools import ROOT
from tools.build import functions
from tools.deploy.settings import SERVICES, Settings

SWEEP_ROUTE = ("POST", "/sweep")
SWEEP_SCHEDULE = "* * * * *"
VAULT_TOKEN_NAME = "speed_to_lead_internal_token"
TOKEN_VARIABLE = "INTERNAL_TOKEN"


@dataclass(frozen=True)
class Function:
    name: str
    function: functions.Function
    env: dict[str, str]  # what it receives
    derived: dict[str, str]  # of which computed here: other functions' URLs
    missing: list[str]  # required and unset
    url: str

    @property
    def env_file_name(self) -> str:
        return f"{self.name}.env.yaml"


@dataclass(frozen=True)
class Step:
    argv: list[str]
    notes: list[str] = field(default_factory=list)

    def shell(self) -> str:
        return shlex.join(self.argv)


@dataclass
class Plan:
    settings: Settings
    functions: list[Function]
    files: dict[Path, str]  # generated, secrets inside: written 0600
    steps: list[Step]

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)

    @property
    def sweeps(self) -> list[Function]:
        return [f for f in self.functions if f.function.has_route(*SWEEP_ROUTE)]


def shown(path: Path) -> str:
    """A path as the commands name it: relative to the repository (they run there)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def function(settings: Settings, name: str, every: list[str]) -> Function:
    """Function ``name``: the variables it reads that are set, and which required ones are not."""
    found = functions.function(name)
    env: dict[str, str] = {}
    derived: dict[str, str] = {}
    missing: list[str] = []
    for variable in found.variables:
        other = variable.name.removesuffix("_URL").lower()
        if variable.name.endswith("_URL") and other in every and other != name:
            derived[variable.name] = env[variable.name] = settings.url(other)
        elif settings.get(variable.name):
            env[variable.name] = settings.get(variable.name)
        elif variable.required:
            missing.append(variable.name)
    return Function(name, found, env, derived, missing, settings.url(name))


def _order(functions: list[Function]) -> list[Function]:
    """By name, each after the functions whose URL it is given (place_call before meta_webhook)."""
    ordered: list[Function] = []
    pending = sorted(functions, key=lambda f: f.name)
    names = {f.name for f in functions}
    while pending:
        for candidate in pending:
            after = {v.removesuffix("_URL").lower() for v in candidate.derived} & names
            if after <= {f.name for f in ordered}:
                ordered.append(candidate)
                pending.remove(candidate)
                break
        else:  # a cycle: no order satisfies it, the URLs are known anyway
            ordered.extend(pending)
            break
    return ordered


def env_yaml(env: dict[str, str]) -> str:
    """An ``--env-vars-file``: one ``KEY: "value"`` line each (a JSON string is a YAML string)."""
    header = "# Written by `make deploy` (tools/deploy): this function's variables only.\n"
    return header + "".join(
        f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in sorted(env.items())
    )


def _literal(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a NUL cannot be sent to Postgres")
    return "'" + text.replace("'", "''") + "'"


def sweeps_sql(settings: Settings, sweeps: list[Function], token: str) -> str:
    """One statement: enable pg_cron and pg_net, keep INTERNAL_TOKEN in Vault (created or
    updated), and (re)schedule each sweep; running it again changes nothing."""
    lines = [
        "-- Written by `make deploy` (tools/deploy/plan.py): the sweeps, every minute, by pg_cron",
        "-- and pg_net on the Supabase project. cron.schedule replaces a job of the same name and",
        "-- the token is updated in place, so running this again changes nothing. Each run reads",
        "-- the token from Vault: it is never in cron.job.",
        "do $deploy$",
        "declare",
        "  token_id uuid;",
        "begin",
        "  create extension if not exists pg_cron with schema pg_catalog;",
        "  create extension if not exists pg_net with schema extensions;",
        f"  select id into token_id from vault.secrets where name = {_literal(VAULT_TOKEN_NAME)};",
        "  if token_id is null then",
        f"    perform vault.create_secret({_literal(token)}, {_literal(VAULT_TOKEN_NAME)},",
        "      'INTERNAL_TOKEN: the bearer token of the functions'' sweeps (make deploy)');",
        "  else",
        f"    perform vault.update_secret(token_id, {_literal(token)});",
        "  end if;",
    ]
    for sweep in sweeps:
        timeout_ms = int(float(settings.setting("GCF_TIMEOUT_SECONDS", sweep.name)) * 1000)
        command = (
            f"select net.http_post(url := {_literal(sweep.url + SWEEP_ROUTE[1])}, "
            "headers := jsonb_build_object('Authorization', 'Bearer ' || (select "
            "decrypted_secret from vault.decrypted_secrets where name = "
            f"{_literal(VAULT_TOKEN_NAME)}), 'Content-Type', 'application/json'), "
            f"body := '{{}}'::jsonb, timeout_milliseconds := {timeout_ms})"
        )
        if "$job$" in command:
            raise ValueError("a sweep URL cannot hold $job$")
        lines.append(
            f"  perform cron.schedule({_literal(sweep_job(sweep.name))}, "
            f"{_literal(SWEEP_SCHEDULE)}, $job${command}$job$);"
        )
    lines += ["end", "$deploy$;"]
    return "\n".join(lines) + "\n"


def sweep_job(name: str) -> str:
    return f"{name}_sweep"


def build(settings: Settings, names: list[str], every: list[str]) -> Plan:
    """The plan deploying ``names`` (of ``every`` function)."""
    functions = _order([function(settings, name, every) for name in names])
    generated = settings.paths.generated
    supabase, gcloud = settings.supabase, settings.gcloud
    project = f"--project={settings.project or '<GCP_PROJECT>'}"
    files: dict[Path, str] = {}
    steps = [
        Step(
            [supabase, "db", "push", *settings.supabase_target(), "--yes"],
            ["the migrations in supabase/migrations (those already applied are skipped)"],
        ),
        Step([gcloud, "services", "enable", *SERVICES, project, "--quiet"]),
    ]
    for f in functions:
        env_file = generated / f.env_file_name
        files[env_file] = env_yaml(f.env)
        setting = partial(settings.setting, function=f.name)
        listed = ", ".join(
            name + (" (its URL)" if name in f.derived else "") for name in sorted(f.env)
        )
        steps.append(
            Step(
                [
                    gcloud,
                    "functions",
                    "deploy",
                    f.name,
                    "--gen2",
                    f"--runtime={setting('GCF_RUNTIME')}",
                    f"--region={settings.region or '<GCP_REGION>'}",
                    f"--source={shown(settings.paths.bundles / f.name)}",
                    f"--entry-point={f.function.entry_point}",
                    "--trigger-http",
                    "--allow-unauthenticated",
                    f"--env-vars-file={shown(env_file)}",
                    f"--memory={setting('GCF_MEMORY')}",
                    f"--timeout={setting('GCF_TIMEOUT_SECONDS')}s",
                    f"--min-instances={setting('GCF_MIN_INSTANCES')}",
                    f"--max-instances={setting('GCF_MAX_INSTANCES')}",
                    project,
                    "--quiet",
                    # gcloud would print the deployed function, its variables' values included.
                    "--format=none",
                ],
                [f"{f.url}: {len(f.env)} variables: {listed}"],
            )
        )
    sweeps = [f for f in functions if f.function.has_route(*SWEEP_ROUTE)]
    if sweeps:
        sql_file = generated / "sweeps.sql"
        # The first of INTERNAL_TOKEN's values (``new,old`` while rotating) is what the sweeps send.
        token = settings.get(TOKEN_VARIABLE).split(",")[0].strip()
        files[sql_file] = sweeps_sql(settings, sweeps, token)
        jobs = ", ".join(f"{sweep_job(f.name)} (POST {f.url}/sweep)" for f in sweeps)
        steps.append(
            Step(
                [supabase, "db", "query", *settings.supabase_target(), "--file", shown(sql_file)],
                [f"pg_cron, every minute: {jobs}", *files[sql_file].splitlines()],
            )
        )
    return Plan(settings, functions, files, steps)


_MASK = "***"


class Masker:
    """Replaces every secret value in a line with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
            if secrets
            else None
        )

    def __call__(self, text: str) -> str:
        return self._pattern.sub(_MASK, text) if self._pattern else text
