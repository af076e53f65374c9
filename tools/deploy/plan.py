"""The deployment as data: each function with exactly the variables it reads, the files the
deploy generates (per-function env files, the sweeps' SQL), and the commands, in order. Nothing
here runs anything, so a dry run and a real run are the same plan.

1. ``supabase db push``: the migrations.
2. ``gcloud services enable``: the APIs a 2nd gen deploy uses (idempotent).
3. Secret Manager: each secret variable a secret (``speed-to-lead-<name>``, created when
   missing, a new version from standard input: never on a command line nor in a file), each
   function its own runtime service account (``stl-<function>``), allowed to read only the
   secrets that function reads (``roles/secretmanager.secretAccessor`` per secret).
4. ``gcloud functions deploy`` per function, a function before those that call it (a variable
   named ``<FUNCTION>_URL``, such as meta_webhook's ``PLACE_CALL_URL``, is set to that function's
   URL, which is known before it exists: ``https://<region>-<project>.cloudfunctions.net/<name>``).
   ``--env-vars-file`` (its plain settings) and ``--set-secrets`` (its secrets, ``:latest``)
   replace every variable the function had, so none is left behind; ``--service-account`` runs
   it as its own account.
5. ``internal_token_store`` through the database API: INTERNAL_TOKEN into Supabase Vault, in the
   request body (never in SQL text, which can surface in logs and query statistics).
6. ``supabase db query --file``: the sweeps (every function with a ``POST /sweep`` route),
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
TOKEN_STORE = "internal_token_store"  # SQL: stores the token in Vault
SECRET_PREFIX = "speed-to-lead-"  # Secret Manager: speed-to-lead-meta-app-secret …
ACCOUNT_PREFIX = "stl-"  # service accounts: stl-meta-webhook@<project>.iam.gserviceaccount.com
# What the build account needs: build, and write the build's logs.
BUILD_ROLES = (
    ("roles/cloudbuild.builds.builder", "build the functions (Cloud Build builder)"),
    ("roles/logging.logWriter", "write the build's logs"),
)


@dataclass(frozen=True)
class Function:
    name: str
    function: functions.Function
    env: dict[str, str]  # what it receives
    derived: dict[str, str]  # of which computed here: other functions' URLs
    missing: list[str]  # required and unset
    url: str
    service_account: str = ""  # its own runtime identity, allowed to read its secrets only

    @property
    def env_file_name(self) -> str:
        return f"{self.name}.env.yaml"

    @property
    def secrets(self) -> list[str]:
        """Its variables that are secrets: mounted from Secret Manager, never in its env file."""
        secret = {v.name for v in self.function.variables if v.secret}
        return sorted(name for name in self.env if name in secret)

    @property
    def plain(self) -> dict[str, str]:
        """Its other variables: the env file."""
        return {k: v for k, v in self.env.items() if k not in self.secrets}


@dataclass(frozen=True)
class Step:
    argv: list[str]
    notes: list[str] = field(default_factory=list)
    # Skipped when this command succeeds (what the step creates exists already) and, with
    # ``unless_prints``, prints exactly that (what the step would store is stored already).
    unless: list[str] | None = None
    unless_prints: str | None = None
    # Given on the command's standard input (a secret's value: never on its command line).
    stdin: str | None = None
    # A call of the database API instead of a command: (function, its arguments). Its arguments
    # travel in the HTTPS request body only, never on a command line or in SQL text.
    rpc: tuple[str, dict[str, str]] | None = None

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
    return Function(
        name, found, env, derived, missing, settings.url(name), service_account(settings, name)
    )


def secret_name(variable: str) -> str:
    """The Secret Manager secret holding ``variable``'s value."""
    return SECRET_PREFIX + variable.lower().replace("_", "-")


def service_account(settings: Settings, name: str) -> str:
    """Function ``name``'s runtime service account (created by the deploy)."""
    account = ACCOUNT_PREFIX + name.replace("_", "-")
    return f"{account}@{settings.project or '<GCP_PROJECT>'}.iam.gserviceaccount.com"


def build_account(settings: Settings) -> str:
    """The service account Cloud Build builds the functions as (created by the deploy)."""
    return f"{ACCOUNT_PREFIX}build@{settings.project or '<GCP_PROJECT>'}.iam.gserviceaccount.com"


def build_steps(settings: Settings, project: str) -> list[Step]:
    """A build service account of its own with the Cloud Build builder role: since July 2024 a
    new project's default build account may lack what a function's build needs."""
    gcloud, account = settings.gcloud, build_account(settings)
    return [
        Step(
            [
                gcloud,
                "iam",
                "service-accounts",
                "create",
                account.split("@")[0],
                "--display-name=speed to lead: builds",
                project,
                "--quiet",
            ],
            ["the account Cloud Build builds the functions as (skipped when it exists)"],
            unless=[
                gcloud,
                "iam",
                "service-accounts",
                "describe",
                account,
                project,
                "--format=none",
            ],
        ),
        *(
            Step(
                [
                    gcloud,
                    "projects",
                    "add-iam-policy-binding",
                    settings.project or "<GCP_PROJECT>",
                    f"--member=serviceAccount:{account}",
                    f"--role={role}",
                    "--condition=None",
                    "--quiet",
                    "--format=none",
                ],
                [f"it may {what}"],
            )
            for role, what in BUILD_ROLES
        ),
    ]


def secret_steps(settings: Settings, functions: list[Function], project: str) -> list[Step]:
    """Each secret the functions read into Secret Manager (a new version with the value on
    stdin), each function's own service account, allowed to read its own secrets only."""
    gcloud = settings.gcloud
    steps: list[Step] = []
    values = {name: f.env[name] for f in functions for name in f.secrets}
    for variable in sorted(values):
        name = secret_name(variable)
        steps.append(
            Step(
                [
                    gcloud,
                    "secrets",
                    "create",
                    name,
                    "--replication-policy=automatic",
                    project,
                    "--quiet",
                ],
                [f"{variable} in Secret Manager (skipped when it exists)"],
                unless=[gcloud, "secrets", "describe", name, project, "--format=none"],
            )
        )
        steps.append(
            Step(
                [
                    gcloud,
                    "secrets",
                    "versions",
                    "add",
                    name,
                    "--data-file=-",
                    project,
                    "--quiet",
                    "--format=none",
                ],
                [
                    f"its value: {variable} from supabase/.env, on standard input; a new "
                    "version only when it differs from the latest (read back the same way)"
                ],
                stdin=values[variable],
                unless=[
                    gcloud,
                    "secrets",
                    "versions",
                    "access",
                    "latest",
                    f"--secret={name}",
                    project,
                ],
                unless_prints=values[variable],
            )
        )
    for f in functions:
        account = f.service_account.split("@")[0]
        steps.append(
            Step(
                [
                    gcloud,
                    "iam",
                    "service-accounts",
                    "create",
                    account,
                    f"--display-name=speed to lead: {f.name}",
                    project,
                    "--quiet",
                ],
                [f"{f.name}'s runtime identity (skipped when it exists)"],
                unless=[
                    gcloud,
                    "iam",
                    "service-accounts",
                    "describe",
                    f.service_account,
                    project,
                    "--format=none",
                ],
            )
        )
        for variable in f.secrets:
            steps.append(
                Step(
                    [
                        gcloud,
                        "secrets",
                        "add-iam-policy-binding",
                        secret_name(variable),
                        f"--member=serviceAccount:{f.service_account}",
                        "--role=roles/secretmanager.secretAccessor",
                        project,
                        "--quiet",
                        "--format=none",
                    ],
                    [f"{f.name} may read {variable}"],
                )
            )
    return steps


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


def sweeps_sql(settings: Settings, sweeps: list[Function]) -> str:
    """One statement: enable pg_cron and pg_net and (re)schedule each sweep; running it again
    changes nothing. No secret: the token is stored in Vault by the step before
    (``internal_token_store``, through the database API), and each run reads it from there."""
    lines = [
        "-- Written by `make deploy` (tools/deploy/plan.py): the sweeps, every minute, by pg_cron",
        "-- and pg_net on the Supabase project. cron.schedule replaces a job of the same name, so",
        "-- running this again changes nothing. Each run reads the token from Vault (stored by",
        "-- internal_token_store): it is never in this text nor in cron.job.",
        "do $deploy$",
        "begin",
        "  create extension if not exists pg_cron with schema pg_catalog;",
        "  create extension if not exists pg_net with schema extensions;",
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
        *build_steps(settings, project),
        *secret_steps(settings, functions, project),
    ]
    project_id = settings.project or "<GCP_PROJECT>"
    builder = f"projects/{project_id}/serviceAccounts/{build_account(settings)}"
    for f in functions:
        env_file = generated / f.env_file_name
        files[env_file] = env_yaml(f.plain)  # no secret: those are mounted from Secret Manager
        mounted = ",".join(f"{v}={secret_name(v)}:latest" for v in f.secrets)
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
                    *([f"--set-secrets={mounted}"] if mounted else []),
                    f"--service-account={f.service_account}",
                    f"--build-service-account={builder}",
                    f"--memory={setting('GCF_MEMORY')}",
                    f"--timeout={setting('GCF_TIMEOUT_SECONDS')}s",
                    f"--min-instances={setting('GCF_MIN_INSTANCES')}",
                    f"--max-instances={setting('GCF_MAX_INSTANCES')}",
                    project,
                    "--quiet",
                    # gcloud would print the deployed function, its variables' values included.
                    "--format=none",
                ],
                [
                    f"{f.url}: {len(f.env)} variables: {listed}",
                    f"secrets from Secret Manager: {', '.join(f.secrets) or 'none'}; runs as "
                    f"{f.service_account}",
                ],
            )
        )
    sweeps = [f for f in functions if f.function.has_route(*SWEEP_ROUTE)]
    if sweeps:
        sql_file = generated / "sweeps.sql"
        # The first of INTERNAL_TOKEN's values (``new,old`` while rotating) is what the sweeps send.
        token = settings.get(TOKEN_VARIABLE).split(",")[0].strip()
        steps.append(
            Step(
                ["database-api", "rpc", TOKEN_STORE],
                [
                    f"{TOKEN_VARIABLE} stored in Supabase Vault as {VAULT_TOKEN_NAME}, sent in the "
                    "request body of the database API (never in SQL text nor on a command line)"
                ],
                rpc=(TOKEN_STORE, {"p_token": token}),
            )
        )
        files[sql_file] = sweeps_sql(settings, sweeps)
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
