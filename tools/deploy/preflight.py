"""Preflight: everything a deploy needs, checked before anything changes, every problem at once.
A problem names what is missing or wrong and what to do; it never shows a secret's value."""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
from collections.abc import Mapping
from typing import Any

from lib.errors import ConfigError
from tools.deploy.plan import TOKEN_VARIABLE, Plan, shown
from tools.deploy.settings import Settings, db_url_ref, supabase_ref

_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
MIN_TOKEN_LENGTH = 32
KEY = "SUPABASE_SERVICE_ROLE_KEY"


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded without verifying it (only its claims are looked at)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a key that runs as service_role, or None when it is one."""
    if key.startswith("sb_secret_"):
        return None
    if key.startswith("sb_publishable_"):
        return (
            f"{KEY} is the publishable key (sb_publishable_…), which runs as anon: use a secret "
            "key (sb_secret_…, Project Settings > API Keys) or the legacy service_role key"
        )
    claims = jwt_claims(key)
    if claims is None:
        return (
            f"{KEY} is neither a secret key (sb_secret_…) nor a JWT: copy it from Project "
            "Settings > API Keys"
        )
    role = claims.get("role")
    if role != "service_role":
        shown_role = str(role)[:40] if isinstance(role, str) else "none"
        return (
            f"{KEY} is a JWT whose role is {shown_role!r}, not 'service_role' (the anon key?): "
            "use a secret key (sb_secret_…) or the legacy service_role key"
        )
    return None


def _cli_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.which(settings.gcloud) is None:
        problems.append(
            f"the gcloud CLI ({settings.gcloud}) is not found: install the Google Cloud SDK "
            "(https://cloud.google.com/sdk/docs/install), then `gcloud auth login`"
        )
    if settings.which(settings.supabase) is None:
        problems.append(
            f"the Supabase CLI ({settings.supabase}) is not found: `make install` installs the "
            "pinned one"
        )
    return problems


def _project_refs(settings: Settings) -> list[str]:
    """Where the Supabase project ref comes from, when those disagree."""
    refs = {
        "SUPABASE_URL": supabase_ref(settings.get("SUPABASE_URL")),
        "the linked project (supabase link)": "" if settings.db_url else settings.linked_ref,
        "SUPABASE_DB_URL": db_url_ref(settings.db_url),
    }
    claims = jwt_claims(settings.get(KEY)) or {}
    ref = claims.get("ref")
    refs[KEY] = ref if isinstance(ref, str) else ""
    found = {where: ref for where, ref in refs.items() if ref}
    if len(set(found.values())) <= 1:
        return []
    listed = ", ".join(f"{where}: {ref}" for where, ref in found.items())
    return [f"the Supabase project differs between settings ({listed}): they must be one project"]


def _function_problems(settings: Settings, plan: Plan) -> list[str]:
    problems = []
    for f in plan.functions:
        broken = sorted(name for name, value in f.env.items() if "\n" in value or "\r" in value)
        if broken:
            problems.append(
                f"{f.name}: {', '.join(broken)} holds a line break, which a Cloud Functions "
                "variable cannot (gcloud refuses the env file)"
            )
        loaded = None
        try:
            loaded = f.function.settings.load(f.env)
        except ConfigError as err:
            problems.extend(f"{f.name}: {name}: {why}" for name, why in err.invalid.items())
        cloud, invalid = settings.cloud_function(f.name)
        problems.extend(f"{f.name}: {name}: {why}" for name, why in invalid.items())
        timeout = None if "GCF_TIMEOUT_SECONDS" in invalid else cloud.gcf_timeout_seconds
        budget = getattr(loaded, "sweep_time_budget_seconds", None)
        if budget is not None and timeout is not None and budget >= timeout:
            problems.append(
                f"{f.name}: SWEEP_TIME_BUDGET_SECONDS ({budget:g}) must be under its timeout "
                f"(GCF_TIMEOUT_SECONDS, {timeout} s), or the sweep is cut off mid-batch"
            )
    return problems


def check(
    settings: Settings,
    plan: Plan,
    *,
    dry_run: bool,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """``(problems, notes)``. A dry run runs no CLI, so a missing CLI is only a note there."""
    problems: list[str] = []
    notes: list[str] = []
    (notes if dry_run else problems).extend(_cli_problems(settings))

    if not settings.project:
        problems.append("GCP_PROJECT is not set: the Google Cloud project id to deploy to")
    elif not _PROJECT.fullmatch(settings.project):
        problems.append(f"GCP_PROJECT {settings.project!r} is not a project id (my-project-123)")
    if not settings.region:
        problems.append("GCP_REGION is not set: the Cloud Functions region (us-central1 …)")
    elif not _REGION.fullmatch(settings.region):
        problems.append(f"GCP_REGION {settings.region!r} is not a region (us-central1)")

    if not settings.db_url and not settings.linked_ref:
        problems.append(
            "the Supabase project is not linked and SUPABASE_DB_URL is not set: `"
            f"{settings.supabase} link --project-ref <ref>` (the <ref> of "
            "https://<ref>.supabase.co), or SUPABASE_DB_URL=<the database's connection string>"
        )
    problems.extend(_project_refs(settings))

    env_file = settings.paths.env_file
    if not env_file.is_file():
        problems.append(
            f"{shown(env_file)} does not exist: copy supabase/.env.example to it and fill it in"
        )
    missing: dict[str, list[str]] = {}
    for f in plan.functions:
        for name in f.missing:
            missing.setdefault(name, []).append(f.name)
    if missing:
        listed = "; ".join(
            f"{name} ({', '.join(sorted(users))})" for name, users in sorted(missing.items())
        )
        problems.append(
            f"not set in {shown(env_file)} nor the environment: {listed} "
            "(supabase/.env.example says where each comes from; FUNCTION=<name> deploys one "
            "function)"
        )
    key = settings.get(KEY)
    if key and any(KEY in f.env for f in plan.functions):
        problem = key_problem(key)
        if problem:
            problems.append(problem)
    url = settings.get("SUPABASE_URL")
    if url and not url.startswith("https://"):
        problems.append("SUPABASE_URL must be the project's https:// URL (Project Settings > API)")
    token = settings.get(TOKEN_VARIABLE)
    if token and len(token) < MIN_TOKEN_LENGTH:
        problems.append(
            f"{TOKEN_VARIABLE} is shorter than {MIN_TOKEN_LENGTH} characters, and the sweeps are "
            "public URLs: `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if plan.sweeps and not token:
        missing_token = f"{TOKEN_VARIABLE} (the sweeps' bearer token)"
        if not any(TOKEN_VARIABLE in f.missing for f in plan.functions):
            problems.append(f"not set: {missing_token}")
    problems.extend(_function_problems(settings, plan))
    if not problems and not dry_run:
        problem, note = org_policy(settings, environ)
        problems.extend([problem] if problem else [])
        notes.extend([note] if note else [])
    return problems, notes


ORG_POLICY = "iam.allowedPolicyMemberDomains"


def org_policy(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(problem, note): whether the project's effective organisation policy restricts IAM members
    to some domains (domain-restricted sharing), which forbids ``--allow-unauthenticated`` (an
    ``allUsers`` binding) and so every webhook. A policy that cannot be read is a note."""
    command = [
        settings.which(settings.gcloud) or settings.gcloud,
        "resource-manager",
        "org-policies",
        "describe",
        ORG_POLICY,
        f"--project={settings.project}",
        "--effective",
        "--format=json",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
            env=dict(environ) if environ is not None else None,
        )
        policy = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        policy = None
    if not isinstance(policy, dict):
        return None, (
            f"the organisation policy {ORG_POLICY} could not be read; if the deploy fails on "
            "--allow-unauthenticated, domain-restricted sharing forbids public functions"
        )
    listed = policy.get("listPolicy") if isinstance(policy.get("listPolicy"), dict) else {}
    if listed.get("allowedValues") or listed.get("allValues") == "DENY":
        return (
            f"the organisation policy {ORG_POLICY} (domain-restricted sharing) applies to "
            f"{settings.project}: it forbids --allow-unauthenticated, so Meta, Calendly and "
            "ElevenLabs could not reach the webhooks. Ask the organisation's admin to allow all "
            "members on this project (an exception to the constraint), then deploy again",
            None,
        )
    return None, None
