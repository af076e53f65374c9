"""What a deploy runs with: the variables (``supabase/.env`` overlaid by the environment, which
wins), the GCP project and region, each function's Cloud Functions settings, the CLIs, and
where it writes. Never ``.local/dev.env``: the local stack's values must not reach production.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from lib.errors import ConfigError
from lib.settings import Declared, Secret
from tools import ROOT
from tools.build.lock import RUNTIME
from tools.stack import envfile


def _pattern(expression: str, example: str) -> AfterValidator:
    compiled = re.compile(expression)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be like {example}")
        return value

    return AfterValidator(check)


class CloudFunction(Declared):
    """A function's Cloud Functions settings, each overridable per function:
    ``GCF_MEMORY_PLACE_CALL=1Gi``."""

    gcf_runtime: Annotated[str, _pattern(r"python3[0-9]+", "python312")] = RUNTIME
    # 512Mi comes with a third of a vCPU (256Mi: a sixth): the cold start of the first lead
    # after a quiet night is CPU-bound import time (docs/PERFORMANCE.md).
    gcf_memory: Annotated[str, _pattern(r"[0-9]+(Mi|Gi|M|G|MB|GB)", "512Mi or 1Gi")] = "512Mi"
    # Over SWEEP_TIME_BUDGET_SECONDS (45), which a sweep must finish within.
    gcf_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    gcf_min_instances: Annotated[int, Field(ge=0)] = 0
    gcf_max_instances: Annotated[int, Field(ge=1)] = 20

    @model_validator(mode="after")
    def _instances(self) -> Self:
        if self.gcf_max_instances < self.gcf_min_instances:
            raise PydanticCustomError(
                "instances",
                "GCF_MAX_INSTANCES must be at least GCF_MIN_INSTANCES",
                {"names": ["GCF_MIN_INSTANCES", "GCF_MAX_INSTANCES"]},
            )
        return self


class DeployVariables(CloudFunction):
    """What `make deploy` reads beside the functions' variables (never passed to a function)."""

    # The Google Cloud project id and the Cloud Functions region the functions go to.
    gcp_project: (
        Annotated[str, _pattern(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", "my-project-123")] | None
    ) = None
    gcp_region: Annotated[str, _pattern(r"[a-z]+-[a-z]+[0-9]+", "us-central1")] | None = None
    # The database of `supabase db push` and the sweeps' schedule (empty: the linked project),
    # the database password (spares the CLI's prompt), and a Supabase access token for the CLI.
    supabase_db_url: str | None = None  # its password is masked in every output
    supabase_db_password: Secret | None = None
    supabase_access_token: Secret | None = None


DEFAULTS = {v.name: v.default for v in CloudFunction.variables()}
# The functions on the path from a form to the phone keep one warm instance each by default: at
# a third of a vCPU (512Mi) a cold start spends about 1.2 s importing alone (measured under a
# cgroup CPU quota, docs/PERFORMANCE.md), so the first lead after a quiet night, meeting two cold
# starts, can miss meta_webhook's 2 s PLACE_CALL_TIMEOUT_SECONDS and wait for the next sweep.
# GCF_MIN_INSTANCES (for all) or GCF_MIN_INSTANCES_<FUNCTION> overrides these.
FUNCTION_DEFAULTS: dict[str, dict[str, str]] = {
    "meta_webhook": {"GCF_MIN_INSTANCES": "1"},
    "place_call": {"GCF_MIN_INSTANCES": "1"},
}
# The Google APIs a Cloud Functions (2nd gen) deploy uses; enabling one twice changes nothing.
SERVICES = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
)
# Variables of the deploy itself (not of any function) whose values are never printed.
DEPLOY_SECRETS = tuple(v.name for v in DeployVariables.variables() if v.secret)
# Passed to the Supabase CLI when set (in supabase/.env or the environment).
SUPABASE_CLI_VARIABLES = DEPLOY_SECRETS
SUPABASE_CLI = ROOT / "node_modules" / ".bin" / "supabase"  # pinned in package.json


@dataclass(frozen=True)
class Paths:
    env_file: Path = envfile.SECRETS_FILE
    build: Path = ROOT / "build"
    # Written by `supabase link --project-ref <ref>`.
    project_ref: Path = ROOT / "supabase" / ".temp" / "project-ref"

    @property
    def bundles(self) -> Path:
        return self.build / "functions"

    @property
    def generated(self) -> Path:
        """The per-function env files and the sweeps' SQL (secrets: mode 0600, git-ignored)."""
        return self.build / "deploy"


def load_env(paths: Paths, environ: Mapping[str, str]) -> dict[str, str]:
    """supabase/.env, overlaid by the environment (it wins); empty values count as unset."""
    return {**envfile.read(paths.env_file), **{k: v for k, v in environ.items() if v}}


@dataclass(frozen=True)
class Settings:
    env: Mapping[str, str]
    paths: Paths = field(default_factory=Paths)

    def get(self, name: str) -> str:
        return (self.env.get(name) or "").strip()

    @property
    def project(self) -> str:
        return self.get("GCP_PROJECT")

    @property
    def region(self) -> str:
        return self.get("GCP_REGION")

    @property
    def db_url(self) -> str:
        return self.get("SUPABASE_DB_URL")

    @cached_property
    def linked_ref(self) -> str:
        path = self.paths.project_ref
        return path.read_text().strip() if path.is_file() else ""

    def cloud_function(self, function: str) -> tuple[CloudFunction, dict[str, str]]:
        """``function``'s Cloud Functions settings (``<NAME>_<FUNCTION>``, else ``<NAME>``, else
        the default), an invalid one at its default; and what is wrong with each invalid one."""
        suffix = f"_{function.upper()}"
        own = FUNCTION_DEFAULTS.get(function, {})
        values = {
            v.name: self.get(v.name + suffix) or self.get(v.name) or own.get(v.name, "")
            for v in CloudFunction.variables()
        }
        try:
            return CloudFunction.load(values), {}
        except ConfigError as err:
            # Each invalid one at its default (the function's own, else the declared one).
            valid = {
                name: own.get(name, "") if name in err.invalid else value
                for name, value in values.items()
            }
            try:
                return CloudFunction.load(valid), err.invalid
            except ConfigError:  # only together are they wrong: every default
                return CloudFunction.load(own), err.invalid

    def setting(self, name: str, function: str) -> str:
        """One Cloud Functions setting of ``function`` (its default when it is invalid: the
        preflight names it)."""
        return str(getattr(self.cloud_function(function)[0], name.lower()))

    def url(self, function: str) -> str:
        """A 2nd gen function's URL, known before it is deployed."""
        region = self.region or "<GCP_REGION>"
        project = self.project or "<GCP_PROJECT>"
        return f"https://{region}-{project}.cloudfunctions.net/{function}"

    @property
    def gcloud(self) -> str:
        return self.get("GCLOUD") or "gcloud"

    @property
    def supabase(self) -> str:
        """The Supabase CLI: SUPABASE_CLI, else the pinned one (`make install`)."""
        return self.get("SUPABASE_CLI") or str(SUPABASE_CLI.relative_to(ROOT))

    def which(self, command: str) -> str | None:
        """Where ``command`` is, as the deploy would run it (from the repository root)."""
        if os.sep in command:
            path = Path(command) if Path(command).is_absolute() else ROOT / command
            return str(path) if os.access(path, os.X_OK) and path.is_file() else None
        return shutil.which(command, path=self.get("PATH") or os.defpath)

    def supabase_target(self) -> list[str]:
        """Which database the Supabase CLI works on: SUPABASE_DB_URL, else the linked project."""
        return ["--db-url", self.db_url] if self.db_url else ["--linked"]

    def secret_values(self, variables: list[str]) -> list[str]:
        """Every value that must never be printed: these variables' (each part of a rotated
        ``new,old`` list too), the deploy's own secrets, and SUPABASE_DB_URL's password."""
        values = [self.get(name) for name in [*variables, *DEPLOY_SECRETS]]
        values += [part.strip() for value in list(values) for part in value.split(",")]
        if self.db_url:
            values.append(urlsplit(self.db_url).password or "")
        return sorted({v for v in values if v}, key=len, reverse=True)


def supabase_ref(url: str) -> str:
    """The project ref in a Supabase URL (``https://<ref>.supabase.co``), else ""."""
    host = urlsplit(url).hostname or ""
    match = re.fullmatch(r"([a-z0-9]{20})\.supabase\.(co|in)", host)
    return match.group(1) if match else ""


def db_url_ref(url: str) -> str:
    """The project ref in a database URL: ``db.<ref>.supabase.co`` or the pooler's user
    ``postgres.<ref>``, else ""."""
    parts = urlsplit(url)
    match = re.fullmatch(r"db\.([a-z0-9]{20})\.supabase\.(co|in)", parts.hostname or "")
    if match:
        return match.group(1)
    user = re.fullmatch(r"[a-z_]+\.([a-z0-9]{20})", parts.username or "")
    return user.group(1) if user else ""
