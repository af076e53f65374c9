"""`make deploy` (tools/deploy): the plan it prints and runs, with fake ``gcloud`` and ``supabase``
executables first on PATH that record their argv, so the real run's command sequence is checked
as well as the dry run's; least privilege per function; preflight; never a secret in the output.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import tools
from tools import ROOT
from tools.build import bundle, functions
from tools.deploy import cli, smoke
from tools.deploy.cli import main
from tools.deploy.plan import Masker
from tools.deploy.preflight import ORG_POLICY, key_problem
from tools.deploy.settings import SUPABASE_CLI, Paths, Settings
from tools.stack import local as local_stack
from tools.stack.jwt import encode

PROJECT, REGION, REF = "acme-leads", "europe-west1", "abcdefghijklmnopqrst"
BASE = f"https://{REGION}-{PROJECT}.cloudfunctions.net"
DB_PASSWORD = "db-pass-Secret1-xyz"
# A filled-in supabase/.env: every secret distinct and recognisable in any output.
EXAMPLE = {
    "SUPABASE_URL": f"https://{REF}.supabase.co",
    "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_Zx9sL2kQ0pVtR7wYbN4mC1dE",
    "META_APP_SECRET": "meta-app-secret-new-0123456789,meta-app-secret-old-9876543210",
    "META_VERIFY_TOKEN": "meta-verify-token-4242",
    "META_ACCESS_TOKEN": "EAAGmetaaccesstoken0123456789",
    "META_PAGE_ID": "1029384756",
    "META_GRAPH_VERSION": "v25.0",
    "CALENDLY_SIGNING_KEY": "calendly-signing-key-abcdef",
    "CALENDLY_API_TOKEN": "calendly-api-token-ghijkl",
    "ELEVENLABS_API_KEY": "sk_elevenlabs0123456789abcdef",
    "ELEVENLABS_AGENT_ID": "agent_4101kf6gqfgpfrganck3s1m0ap3v",
    "ELEVENLABS_PHONE_NUMBER_ID": "phnum_01abcdef",
    "ELEVENLABS_WEBHOOK_SECRET": "wsec_elevenlabs_webhook_secret_0123",
    "INTERNAL_TOKEN": "internal-token-0123456789abcdef0123456789",
    "CALL_MAX_ATTEMPTS": "4",
    "HTTP_TIMEOUT_SECONDS": "7",
    "GCP_PROJECT": PROJECT,
    "GCP_REGION": REGION,
    "SUPABASE_DB_PASSWORD": DB_PASSWORD,
}
SECRETS = [
    *(
        value
        for name, value in EXAMPLE.items()
        if name.endswith(("_SECRET", "_TOKEN", "_KEY", "_PASSWORD"))
    ),
    *EXAMPLE["META_APP_SECRET"].split(","),
]
SHARED = {"SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "HTTP_TIMEOUT_SECONDS"}
# What each function receives from EXAMPLE: what it reads, and nothing else.
EXPECTED_ENV = {
    "calendly_webhook": SHARED | {"CALENDLY_SIGNING_KEY"},
    "meta_webhook": SHARED
    | {
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_ACCESS_TOKEN",
        "META_GRAPH_VERSION",
        "INTERNAL_TOKEN",
        "PLACE_CALL_URL",
    },
    "place_call": SHARED
    | {
        "ELEVENLABS_API_KEY",
        "ELEVENLABS_AGENT_ID",
        "ELEVENLABS_PHONE_NUMBER_ID",
        "ELEVENLABS_WEBHOOK_SECRET",
        "INTERNAL_TOKEN",
        "CALL_MAX_ATTEMPTS",
    },
}
# A new project: `describe` finds nothing (exit 1), so every secret and account is created.
FAKE_CLI = """#!{python}
import json, os, sys
argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
stdin = sys.stdin.read() if "--data-file=-" in argv else None
with open(os.environ["FAKE_CLI_LOG"], "a") as log:
    log.write(json.dumps({{"argv": argv, "password": os.environ.get("SUPABASE_DB_PASSWORD"),
                          "stdin": stdin}}))
    log.write("\\n")
if "org-policies" in argv:  # the project's effective organisation policy, as the test sets it
    print(os.environ.get("FAKE_ORG_POLICY", "{{}}"))
    sys.exit(0)
if os.environ.get("FAKE_CLI_FAIL") in sys.argv[1:]:
    sys.exit(1)
# With FAKE_CLI_STATE, a project that keeps what was made: each `… create NAME` makes NAME
# (an account by its id or its email), `… describe NAME` finds it, and `secrets versions add`
# / `access latest` keep and read a secret's versions. Without it, nothing exists.
path = os.environ.get("FAKE_CLI_STATE")
state = json.load(open(path)) if path and os.path.exists(path) else {{"made": [], "versions": {{}}}}
def key(verb):
    at = argv.index(verb)
    return " ".join(argv[1:at]) + " " + argv[at + 1].split("@")[0]
if argv[1:4] == ["secrets", "versions", "access"]:
    name = next(a.split("=", 1)[1] for a in argv if a.startswith("--secret="))
    versions = state["versions"].get(name)
    if not versions:
        sys.exit(1)
    sys.stdout.write(versions[-1])
    sys.exit(0)
if argv[1:4] == ["secrets", "versions", "add"]:
    state["versions"].setdefault(argv[4], []).append(stdin)
elif "create" in argv:
    state["made"].append(key("create"))
elif "describe" in argv:
    sys.exit(0 if key("describe") in state["made"] else 1)
if path:
    with open(path, "w") as out:
        json.dump(state, out)
"""


def secret_variables(name: str) -> list[str]:
    """The variables of function ``name`` that are secrets (lib.settings' Secret type)."""
    return sorted(v.name for v in functions.function(name).variables if v.secret)


@dataclass
class Run:
    code: int
    output: str
    calls: list[list[str]]  # the argv each fake CLI was run with, in order
    passwords: list[str | None]  # the SUPABASE_DB_PASSWORD each one saw
    stdins: list[str | None]  # what each one read on its standard input (a secret's value)

    @property
    def commands(self) -> list[list[str]]:
        """The commands the output prints (``$ …`` lines), as argv."""
        return [shlex.split(line[2:]) for line in self.output.splitlines() if line[:2] == "$ "]

    def deploys(self) -> dict[str, list[str]]:
        return {c[3]: c for c in self.commands if c[1:3] == ["functions", "deploy"]}


class Deployer:
    """Runs tools.deploy in this process against a temporary supabase/.env and build/, with
    fake CLIs on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name in ("gcloud", "supabase"):
            path = self.bin / name
            path.write_text(FAKE_CLI.format(python=sys.executable))
            path.chmod(0o755)
        self.log = tmp_path / "calls.log"
        self.smoke: Callable[[list[smoke.Probe]], list[smoke.Row]] | None = None
        self.paths = Paths(
            env_file=tmp_path / "supabase.env",
            build=tmp_path / "build",
            project_ref=tmp_path / "project-ref",
        )

    def write_env(self, values: Mapping[str, str]) -> None:
        self.paths.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def link(self, ref: str = REF) -> None:
        self.paths.project_ref.write_text(ref + "\n")

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = EXAMPLE,
        environ: Mapping[str, str] | None = None,
        clis: bool = True,
    ) -> Run:
        if env is not None:
            self.write_env(env)
        # Nothing but the fakes: this machine may have a real gcloud in /usr/bin.
        base = {
            "PATH": str(self.bin if clis else self.tmp / "empty"),
            "SUPABASE_CLI": "supabase",
            "FAKE_CLI_LOG": str(self.log),
        }
        self.log.unlink(missing_ok=True)
        lines: list[str] = []
        self.rpcs: list[tuple[str, dict[str, str]]] = []

        def record_rpc(settings: Any, function: str, params: dict[str, str]) -> str | None:
            # The database API of the project, faked here: the call is recorded.
            self.rpcs.append((function, params))
            return None

        self.probes: list[smoke.Probe] = []

        def smoke_ok(found: list[smoke.Probe]) -> list[smoke.Row]:
            # The deployed functions, faked: every probe answered as expected (tests/test_smoke
            # runs the probes against the functions served locally), unless ``self.smoke`` says
            # how to run them.
            self.probes = found
            if self.smoke is not None:
                return self.smoke(found)
            return [smoke.Row(probe, probe.expected, True, "") for probe in found]

        real_rpc, cli.call_rpc = cli.call_rpc, record_rpc
        real_smoke, cli.smoke_test = cli.smoke_test, smoke_ok
        try:
            code = main(list(args), {**base, **(environ or {})}, self.paths, lines.append)
        finally:
            cli.call_rpc = real_rpc
            cli.smoke_test = real_smoke
        logged = self.log.read_text().splitlines() if self.log.exists() else []
        calls = [json.loads(line) for line in logged]
        return Run(
            code,
            "\n".join(lines),
            [call["argv"] for call in calls],
            [call["password"] for call in calls],
            [call.get("stdin") for call in calls],
        )

    def env_file(self, name: str) -> dict[str, str]:
        """A generated --env-vars-file, read back (``KEY: "json string"`` lines)."""
        text = (self.paths.generated / f"{name}.env.yaml").read_text()
        pairs = (line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
        return {key: json.loads(value) for key, value in pairs}


@pytest.fixture
def deploy(tmp_path: Path) -> Deployer:
    return Deployer(tmp_path)


@dataclass
class Linked:
    """One deploy folder, linked, with EXAMPLE: a dry run, then the real run twice."""

    deploy: Deployer
    dry: Run
    real: Run
    files: dict[Path, bytes]
    again: Run
    files_again: dict[Path, bytes]


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Linked:
    deploy = Deployer(tmp_path_factory.mktemp("deploy"))
    deploy.link()
    dry = deploy("--dry-run")
    real = deploy()
    files = _files(deploy.paths.build)
    again = deploy()
    return Linked(deploy, dry, real, files, again, _files(deploy.paths.build))


def test_deploy_dry_run_deploys_every_function_with_its_flags(linked: Linked) -> None:
    deploy, run = linked.deploy, linked.dry
    assert run.code == 0, run.output
    assert run.calls == []  # nothing ran
    deploys = run.deploys()
    assert sorted(deploys) == bundle.function_names()
    for name, argv in deploys.items():
        source = deploy.paths.bundles / name
        assert argv == [
            "gcloud",
            "functions",
            "deploy",
            name,
            "--gen2",
            "--runtime=python312",
            f"--region={REGION}",
            f"--source={source}",
            f"--entry-point={name}",
            "--trigger-http",
            "--allow-unauthenticated",
            f"--env-vars-file={deploy.paths.generated / f'{name}.env.yaml'}",
            "--set-secrets="
            + ",".join(
                f"{v}=speed-to-lead-{v.lower().replace('_', '-')}:latest"
                for v in sorted(set(secret_variables(name)) & EXPECTED_ENV[name])
            ),
            f"--service-account=stl-{name.replace('_', '-')}@{PROJECT}.iam.gserviceaccount.com",
            f"--build-service-account=projects/{PROJECT}/serviceAccounts/"
            f"stl-build@{PROJECT}.iam.gserviceaccount.com",
            "--memory=512Mi",
            "--timeout=60s",
            f"--min-instances={1 if name in ('meta_webhook', 'place_call') else 0}",
            "--max-instances=20",
            f"--project={PROJECT}",
            "--quiet",
            "--format=none",
        ]
        assert (source / "main.py").is_file() and (source / "requirements.txt").is_file()
    commands = run.commands
    assert commands[0] == ["supabase", "db", "push", "--linked", "--yes"]
    assert commands[1][:3] == ["gcloud", "services", "enable"]
    assert commands[-1] == [
        "supabase",
        "db",
        "query",
        "--linked",
        "--file",
        str(deploy.paths.generated / "sweeps.sql"),
    ]
    names = [c[3] for c in commands if c[1:3] == ["functions", "deploy"]]
    assert names.index("place_call") < names.index("meta_webhook")  # the callee first
    for name in bundle.function_names():
        assert f"{BASE}/{name}" in run.output
    assert f"{BASE}/place_call/webhook" in run.output
    assert f"make calendly-subscribe ENV=production URL={BASE}/calendly_webhook" in run.output
    assert "make doctor" in run.output
    assert "Smoke test, after a real deploy (9 probes):" in run.output
    # Two warm instances at 512Mi (0.333 vCPU): 2 x 2,592,000 s x (0.333 x $0.000024 + 0.5 x
    # $0.0000025) = $47.92 a month at most, with the source of the prices.
    assert "meta_webhook 1 x 512Mi, place_call 1 x 512Mi: at most $47.92 a month" in run.output
    assert "https://cloud.google.com/run/pricing, read 2026-12-04" in run.output


def test_deploy_each_function_receives_only_what_it_reads(linked: Linked) -> None:
    deploy = linked.deploy
    for name, expected in EXPECTED_ENV.items():
        received = deploy.env_file(name)
        secret = set(secret_variables(name)) & expected
        assert secret and set(received) == expected - secret, name  # secrets: Secret Manager
        for key, value in received.items():
            if key != "PLACE_CALL_URL":
                assert value == EXAMPLE[key]
        mounted = next(a for a in linked.dry.deploys()[name] if a.startswith("--set-secrets="))
        assert {pair.split("=")[0] for pair in mounted.split("=", 1)[1].split(",")} == secret
    assert deploy.env_file("meta_webhook")["PLACE_CALL_URL"] == f"{BASE}/place_call"
    assert "ELEVENLABS_API_KEY" not in deploy.env_file("meta_webhook")
    # No secret value in any file the deploy leaves under build/.
    for path in deploy.paths.generated.iterdir():
        text = path.read_text()
        assert not [s for s in SECRETS if s in text], path
    assert "META_APP_SECRET" not in deploy.env_file("place_call")
    assert "INTERNAL_TOKEN" not in deploy.env_file("calendly_webhook")
    mode = (deploy.paths.generated / "meta_webhook.env.yaml").stat().st_mode & 0o777
    assert mode == 0o600


def test_deploy_output_never_holds_a_secret_value(deploy: Deployer) -> None:
    db_url = f"postgresql://postgres.{REF}:{DB_PASSWORD}@pooler.supabase.com:5432/postgres"
    run = deploy("--dry-run", env={**EXAMPLE, "SUPABASE_DB_URL": db_url})
    assert run.code == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
    assert f"--db-url postgresql://postgres.{REF}:***@pooler.supabase.com" in run.output
    sql = (deploy.paths.generated / "sweeps.sql").read_text()
    assert EXAMPLE["INTERNAL_TOKEN"] not in sql  # stored through the database API instead
    assert f"» database API: POST {EXAMPLE['SUPABASE_URL']}/rest/v1/rpc/internal_token_store" in (
        run.output
    )


def test_deploy_schedules_each_sweep_with_pg_cron_reading_the_token_from_vault(
    linked: Linked,
) -> None:
    sql = (linked.deploy.paths.generated / "sweeps.sql").read_text()
    body = [line for line in sql.splitlines() if not line.startswith("--")]
    assert body[0] == "do $deploy$" and body[-1] == "$deploy$;"  # one statement
    for name in ("meta_webhook", "place_call"):
        schedule = next(line for line in body if f"cron.schedule('{name}_sweep'" in line)
        assert "'* * * * *'" in schedule
        assert f"url := '{BASE}/{name}/sweep'" in schedule
        assert "'Bearer ' || (select decrypted_secret from vault.decrypted_secrets" in schedule
        assert EXAMPLE["INTERNAL_TOKEN"] not in schedule  # never in cron.job
    assert "calendly_webhook_sweep" not in sql  # it has no /sweep route


def test_deploy_real_run_runs_the_printed_commands_in_order(linked: Linked) -> None:
    assert linked.real.code == 0, linked.real.output
    # Each create is preceded by its `describe` (a new project: nothing found, so it runs).
    policy, *calls = linked.real.calls  # the preflight reads the organisation policy first
    assert policy[1:5] == ["resource-manager", "org-policies", "describe", ORG_POLICY]
    checks = [c for c in calls if "describe" in c or "access" in c]
    assert [c for c in calls if c not in checks] == linked.real.commands
    assert linked.real.commands == linked.dry.commands
    made = [
        c for c in linked.real.commands if "create" in c or c[1:4] == ["secrets", "versions", "add"]
    ]
    assert len(checks) == len(made)
    assert checks
    # Each secret reached Secret Manager on standard input, never on a command line.
    added = {
        c[4]: stdin
        for c, stdin in zip(linked.real.calls, linked.real.stdins, strict=True)
        if c[1:4] == ["secrets", "versions", "add"]
    }
    assert added["speed-to-lead-meta-app-secret"] == EXAMPLE["META_APP_SECRET"]
    assert added["speed-to-lead-internal-token"] == EXAMPLE["INTERNAL_TOKEN"]
    assert not [c for c in linked.real.calls if any(s in " ".join(c) for s in SECRETS)]
    # Each function's account may read its own secrets only.
    bindings = {
        (c[3], c[4].split(":", 1)[1].split("@")[0])
        for c in linked.real.calls
        if c[1:3] == ["secrets", "add-iam-policy-binding"]
    }
    assert ("speed-to-lead-elevenlabs-api-key", "stl-place-call") in bindings
    assert ("speed-to-lead-elevenlabs-api-key", "stl-meta-webhook") not in bindings
    assert ("speed-to-lead-meta-app-secret", "stl-place-call") not in bindings
    # The build runs as an account of its own, with the builder role (new projects' default
    # build account may lack it).
    roles = {
        c[5].removeprefix("--role=")
        for c in linked.real.calls
        if c[1:3] == ["projects", "add-iam-policy-binding"]
        and c[4] == f"--member=serviceAccount:stl-build@{PROJECT}.iam.gserviceaccount.com"
    }
    assert roles == {"roles/cloudbuild.builds.builder", "roles/logging.logWriter"}
    assert "Smoke test: 9 of 9 probes as expected" in linked.real.output
    assert {(p.function, p.what) for p in linked.deploy.probes} >= {
        ("meta_webhook", "Meta handshake"),
        ("calendly_webhook", "POST / unsigned"),
        ("place_call", "POST /webhook unsigned"),
        ("place_call", "POST /sweep with token"),
    }
    # The token reached Vault through the database API, the first of a rotated pair.
    assert linked.deploy.rpcs == [
        ("internal_token_store", {"p_token": EXAMPLE["INTERNAL_TOKEN"].split(",")[0]})
    ]
    # supabase/.env's SUPABASE_DB_PASSWORD reaches the Supabase CLI, and only it.
    for call, password in zip(linked.real.calls, linked.real.passwords, strict=True):
        assert password == (DB_PASSWORD if call[0] == "supabase" else None)
    for secret in SECRETS:
        assert secret not in linked.real.output


def test_deploy_twice_runs_the_same_commands_with_the_same_files(linked: Linked) -> None:
    assert linked.again.code == 0
    assert linked.again.calls == linked.real.calls
    assert linked.again.output == linked.real.output
    assert linked.files_again == linked.files


def test_deploy_one_function_deploys_it_and_its_sweep_only(deploy: Deployer) -> None:
    deploy.link()
    only_calls = {k: v for k, v in EXAMPLE.items() if not k.startswith(("META_", "CALENDLY_"))}
    run = deploy("--function", "place_call", env=only_calls)
    assert run.code == 0, run.output
    assert list(run.deploys()) == ["place_call"]
    assert run.calls[1][1:3] == ["db", "push"]  # after the preflight's org-policy read
    sql = (deploy.paths.generated / "sweeps.sql").read_text()
    assert "place_call_sweep" in sql and "meta_webhook_sweep" not in sql
    assert not (deploy.paths.bundles / "meta_webhook").exists()


def test_deploy_refuses_a_project_under_domain_restricted_sharing(deploy: Deployer) -> None:
    deploy.link()
    policy = '{"constraint": "constraints/iam.allowedPolicyMemberDomains", '
    policy += '"listPolicy": {"allowedValues": ["C03abcdef"]}}'
    run = deploy(environ={"FAKE_ORG_POLICY": policy})
    assert run.code == 1
    assert "domain-restricted sharing" in run.output
    assert "forbids --allow-unauthenticated" in run.output
    assert [c[1:3] for c in run.calls] == [["resource-manager", "org-policies"]]  # nothing else
    # Allowed for all: the deploy goes on.
    allowed = '{"listPolicy": {"allValues": "ALLOW"}}'
    assert deploy(environ={"FAKE_ORG_POLICY": allowed}).code == 0


def test_deploy_stops_at_the_first_failing_command(deploy: Deployer) -> None:
    deploy.link()
    run = deploy(environ={"FAKE_CLI_FAIL": "functions"})
    assert run.code == 1
    assert run.calls[-1][1:3] == ["functions", "deploy"]
    assert not any(call[1:3] == ["db", "query"] for call in run.calls)
    assert "deploy stopped" in run.output


def test_deploy_preflight_names_every_missing_piece_at_once(deploy: Deployer) -> None:
    deploy.paths.env_file.unlink(missing_ok=True)
    run = deploy(env=None, clis=False)
    assert run.code == 1
    assert run.calls == [] and not deploy.paths.build.exists()  # nothing built, nothing ran
    for piece in (
        "  - the gcloud CLI (gcloud) is not found",
        "  - the Supabase CLI (supabase) is not found",
        "GCP_PROJECT is not set",
        "GCP_REGION is not set",
        "the Supabase project is not linked and SUPABASE_DB_URL is not set",
        "supabase.env does not exist",
        "INTERNAL_TOKEN (meta_webhook, place_call)",
        "CALENDLY_SIGNING_KEY (calendly_webhook)",
        "ELEVENLABS_API_KEY (place_call)",
        "META_APP_SECRET (meta_webhook)",
        "SUPABASE_SERVICE_ROLE_KEY (calendly_webhook, meta_webhook, place_call)",
    ):
        assert piece in run.output
    assert "PLACE_CALL_URL" not in run.output  # computed, never asked for
    assert "nothing was changed" in run.output


def test_deploy_preflight_stops_a_real_run_without_its_clis(deploy: Deployer) -> None:
    deploy.link()
    run = deploy(clis=False)
    assert run.code == 1 and "preflight: 2 problems" in run.output
    assert "  - the gcloud CLI (gcloud) is not found" in run.output
    assert not deploy.paths.build.exists()


def test_deploy_masks_each_secret_of_a_rotation() -> None:
    settings = Settings({"META_APP_SECRET": "new-secret-1234, old-secret-5678"})
    mask = Masker(settings.secret_values(["META_APP_SECRET"]))
    assert mask("was old-secret-5678, is new-secret-1234") == "was ***, is ***"


def test_deploy_preflight_names_missing_variables_never_their_values(deploy: Deployer) -> None:
    deploy.link()
    partial = {
        k: v for k, v in EXAMPLE.items() if k not in {"META_ACCESS_TOKEN", "CALENDLY_SIGNING_KEY"}
    }
    run = deploy(env=partial)
    assert run.code == 1 and run.calls == []
    assert "CALENDLY_SIGNING_KEY (calendly_webhook); META_ACCESS_TOKEN (meta_webhook)" in (
        run.output
    )
    for secret in SECRETS:
        assert secret not in run.output


def test_deploy_dry_run_reports_preflight_problems_and_still_prints_the_plan(
    deploy: Deployer,
) -> None:
    run = deploy(
        "--dry-run", env={k: v for k, v in EXAMPLE.items() if k != "GCP_REGION"}, clis=False
    )
    assert run.code == 1
    assert "GCP_REGION is not set" in run.output
    assert "note: the gcloud CLI (gcloud) is not found" in run.output  # a dry run runs none
    assert len(run.deploys()) == len(bundle.function_names())


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("sb_secret_abc123", True),
        (encode({"role": "service_role", "ref": REF}, secret="x"), True),
        (encode({"role": "anon", "ref": REF}, secret="x"), False),
        ("sb_publishable_abc123", False),
        ("not-a-key", False),
        ("a.b.c", False),
    ],
)
def test_key_problem_accepts_only_service_role_keys(key: str, accepted: bool) -> None:
    assert (key_problem(key) is None) is accepted


def test_deploy_preflight_refuses_the_anon_key_without_printing_it(deploy: Deployer) -> None:
    deploy.link()
    anon = encode({"role": "anon", "ref": REF, "iss": "supabase"}, secret="jwt-secret")
    run = deploy(env={**EXAMPLE, "SUPABASE_SERVICE_ROLE_KEY": anon})
    assert run.code == 1
    assert "JWT whose role is 'anon'" in run.output and anon not in run.output


def test_deploy_preflight_refuses_two_supabase_projects(deploy: Deployer) -> None:
    deploy.link("zyxwvutsrqponmlkjihg")
    run = deploy()
    assert run.code == 1
    assert f"SUPABASE_URL: {REF}" in run.output
    assert "the linked project (supabase link): zyxwvutsrqponmlkjihg" in run.output


def test_deploy_preflight_checks_settings(deploy: Deployer) -> None:
    deploy.link()
    run = deploy(
        env={
            **EXAMPLE,
            "INTERNAL_TOKEN": "short-token-123",
            "GCF_TIMEOUT_SECONDS_META_WEBHOOK": "30",
            "GCF_MEMORY": "lots",
            "CALL_MAX_ATTEMPTS": "three",
        },
        environ={"META_VERIFY_TOKEN": "two\nlines-of-token"},
    )
    assert run.code == 1
    assert "meta_webhook: META_VERIFY_TOKEN holds a line break" in run.output
    assert "INTERNAL_TOKEN is shorter than 32 characters" in run.output
    assert "meta_webhook: SWEEP_TIME_BUDGET_SECONDS (45) must be under its timeout" in run.output
    assert "place_call: GCF_MEMORY: must be like 512Mi" in run.output
    assert "place_call: CALL_MAX_ATTEMPTS: input should be a valid integer" in run.output
    assert "short-token-123" not in run.output


def test_minimum_instances_default_to_one_on_the_call_path_and_zero_turns_them_off(
    deploy: Deployer,
) -> None:
    deploy.link()
    run = deploy("--dry-run", env={**EXAMPLE, "GCF_MIN_INSTANCES": "0"})
    assert all("--min-instances=0" in argv for argv in run.deploys().values())
    assert "Minimum instances (" not in run.output  # nothing warm, nothing to pay
    run = deploy("--dry-run", env={**EXAMPLE, "GCF_MIN_INSTANCES_PLACE_CALL": "2"})
    assert "--min-instances=2" in run.deploys()["place_call"]
    assert "--min-instances=1" in run.deploys()["meta_webhook"]
    assert "--min-instances=0" in run.deploys()["calendly_webhook"]


def test_deploy_names_instances_wrong_only_together(deploy: Deployer) -> None:
    deploy.link()
    run = deploy("--dry-run", env={**EXAMPLE, "GCF_MIN_INSTANCES": "30"})
    assert "Traceback" not in run.output
    assert "meta_webhook: GCF_MIN_INSTANCES: GCF_MAX_INSTANCES must be at least" in run.output
    # The defaults, meanwhile: meta_webhook keeps one warm instance.
    assert "--min-instances=1" in run.deploys()["meta_webhook"]


def test_deploy_names_a_non_numeric_timeout_before_anything_runs(deploy: Deployer) -> None:
    # It was a traceback: the sweeps' SQL turned the timeout into milliseconds first.
    deploy.link()
    run = deploy("--dry-run", env={**EXAMPLE, "GCF_TIMEOUT_SECONDS": "soon"})
    assert "Traceback" not in run.output
    assert "meta_webhook: GCF_TIMEOUT_SECONDS: input should be a valid integer" in run.output
    assert "place_call: CALL_HOURS_START" not in run.output


def test_deploy_environment_wins_over_the_file_and_settings_per_function(
    deploy: Deployer,
) -> None:
    deploy.link()
    run = deploy(
        "--dry-run",
        env={**EXAMPLE, "GCF_MEMORY_PLACE_CALL": "1Gi"},
        environ={"META_VERIFY_TOKEN": "from-the-environment-77", "META_GRAPH_VERSION": "v99.9"},
    )
    assert run.code == 0, run.output
    assert deploy.env_file("meta_webhook")["META_GRAPH_VERSION"] == "v99.9"
    assert "from-the-environment-77" not in run.output  # a secret: Secret Manager, masked
    assert "--memory=1Gi" in run.deploys()["place_call"]
    assert "--memory=512Mi" in run.deploys()["meta_webhook"]


def test_deploy_unknown_function_is_refused(deploy: Deployer) -> None:
    run = deploy("--function", "nope")
    assert run.code == 2 and "meta_webhook" in run.output


def test_a_new_function_is_described_by_its_own_declarations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function added later deploys with no change to the deploy code: its entry point,
    routes, packages and variables come from its own declarations."""
    folder = tmp_path / "send_sms"
    (folder / "send_sms").mkdir(parents=True)
    (folder / "main.py").write_text(
        "import functions_framework\n"
        "from send_sms import texting\n"
        "from lib.http import Route, Routes, endpoint, internal_token\n\n"
        "def send(request):\n"
        "    return texting.send(request)\n\n"
        "@functions_framework.http\n"
        "@endpoint(provider='sms')\n"
        "def send_sms() -> Routes:\n"
        "    return {('POST', '/'): Route(send),\n"
        "            ('POST', '/sweep'): Route(send, auth=internal_token)}\n"
    )
    (folder / "send_sms" / "__init__.py").write_text("")
    (folder / "send_sms" / "settings.py").write_text(
        "from lib.settings import Private, Secret\n\n"
        "class SendSmsSettings(Private):\n"
        "    twilio_auth_token: Secret | None = None\n"
        "    sms_sender: str = 'Laura'\n"
    )
    (folder / "send_sms" / "texting.py").write_text(
        "def send(request):\n    import twilio.rest\n    return twilio.rest\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    found = functions.describe(folder)
    assert found.entry_point == "send_sms"
    assert found.has_route("POST", "/sweep") and found.has_route("POST", "/")
    # lib.http imports flask and lib.safejson (pydantic), and its error path lib.db (postgrest,
    # httpx); lib.settings pydantic_settings; texting a lazy twilio.
    assert found.imports == (
        "flask",
        "functions_framework",
        "httpx",
        "postgrest",
        "pydantic",
        "pydantic_settings",
        "twilio",
    )
    variables = {v.name: v for v in found.variables}
    assert set(variables) == {
        "HTTP_TIMEOUT_SECONDS",
        "INTERNAL_TOKEN",
        "MAX_BODY_BYTES",
        "SMS_SENDER",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_URL",
        "SWEEP_TIME_BUDGET_SECONDS",
        "TWILIO_AUTH_TOKEN",
    }
    assert variables["TWILIO_AUTH_TOKEN"].secret and variables["TWILIO_AUTH_TOKEN"].required
    assert not variables["SMS_SENDER"].secret and not variables["SMS_SENDER"].required


def test_today_s_functions_described() -> None:
    meta = functions.function("meta_webhook")
    assert meta.entry_point == "meta_webhook"
    assert meta.has_route("POST", "/sweep") and meta.has_route("GET", "/")
    assert {"phonenumbers", "postgrest", "pydantic", "httpx", "flask"} <= set(meta.imports)
    assert "phonenumbers" not in functions.function("place_call").imports
    assert meta.required == [
        "INTERNAL_TOKEN",
        "META_ACCESS_TOKEN",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "PLACE_CALL_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_URL",
    ]


def test_python_m_tools_deploy_dry_run(tmp_path: Path) -> None:
    """The module runs as `make deploy DRY_RUN=1` runs it."""
    deploy = Deployer(tmp_path)
    db_url = f"postgresql://postgres:{DB_PASSWORD}@db.{REF}.supabase.co:5432/postgres"
    deploy.write_env({**EXAMPLE, "SUPABASE_DB_URL": db_url})
    env = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG"}}
    answer = subprocess.run(
        [
            *(sys.executable, "-m", "tools.deploy"),
            *("--env-file", str(deploy.paths.env_file), "--build-dir", str(deploy.paths.build)),
        ],
        cwd=ROOT,
        env={
            **env,
            "PYTHONPATH": tools.PYTHONPATH,
            "DRY_RUN": "1",
            "PATH": str(deploy.bin),
            "SUPABASE_CLI": "supabase",
            "FAKE_CLI_LOG": str(deploy.log),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "DRY RUN: nothing was deployed." in answer.stdout
    assert not deploy.log.exists()
    for secret in SECRETS:
        assert secret not in answer.stdout + answer.stderr


# Stand-ins for what the sweeps' SQL calls on Supabase, with the real signatures: Supabase Vault
# (vault.create_secret / update_secret, the decrypted_secrets view), pg_cron (cron.schedule
# replaces a job of the same name) and pg_net (net.http_post, recorded instead of sent).
STUBS = """
create schema vault;
create table vault.secrets (id uuid primary key default gen_random_uuid(), name text unique,
  secret text, description text);
create view vault.decrypted_secrets as
  select id, name, secret as decrypted_secret from vault.secrets;
create function vault.create_secret(new_secret text, new_name text default null,
  new_description text default '', new_key_id uuid default null) returns uuid
  language sql as $$ insert into vault.secrets (name, secret, description)
  values (new_name, new_secret, new_description) returning id $$;
create function vault.update_secret(secret_id uuid, new_secret text default null,
  new_name text default null, new_description text default null, new_key_id uuid default null)
  returns void language sql as $$ update vault.secrets set secret = coalesce(new_secret, secret)
  where id = secret_id $$;
create schema cron;
create table cron.job (jobid bigserial primary key, jobname text unique, schedule text,
  command text);
create function cron.schedule(job_name text, schedule text, command text) returns bigint
  language sql as $$ insert into cron.job (jobname, schedule, command)
  values (job_name, schedule, command) on conflict (jobname)
  do update set schedule = excluded.schedule, command = excluded.command returning jobid $$;
create schema net;
create table net.sent (url text, body jsonb, headers jsonb, timeout_milliseconds int);
create function net.http_post(url text, body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000) returns bigint
  language sql as $$ insert into net.sent values (url, body, headers, timeout_milliseconds)
  returning 1::bigint $$;
"""


def test_sweeps_sql_schedules_once_however_often_it_runs(
    linked: Linked, stack: local_stack.Stack
) -> None:
    """The sweeps' SQL, run by the pinned Supabase CLI (`supabase db query --file`) against a
    database with stand-ins for Vault, pg_cron and pg_net (none is installed here; its two
    `create extension` lines are left out): twice, then with a new token."""
    name = f"sweeps_{secrets.token_hex(4)}"
    admin = stack.env["DATABASE_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(STUBS)
        sql = (linked.deploy.paths.generated / "sweeps.sql").read_text()
        lines = [line for line in sql.splitlines() if "create extension" not in line]
        assert len(lines) == len(sql.splitlines()) - 2
        script = linked.deploy.tmp / "sweeps-stubbed.sql"
        script.write_text("\n".join(lines))
        command = [str(SUPABASE_CLI), "db", "query", "--db-url", f"{url}?sslmode=disable"]
        subprocess.run(
            [*command, "--file", str(script)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        # The token, as the deploy stores it (internal_token_store, the migration's own text),
        # then a new one; the schedule again: nothing changes but the token.
        migration = (
            ROOT / "supabase/migrations/20261204002200_internal_token_store.sql"
        ).read_text()
        token = "a-new-token-" * 3
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(migration.replace("service_role", "current_user"))
            conn.execute("select public.internal_token_store(%s)", (EXAMPLE["INTERNAL_TOKEN"],))
            conn.execute("\n".join(lines))
            conn.execute("select public.internal_token_store(%s)", (token,))
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("select public.internal_token_store('short')")
        with psycopg.connect(url, autocommit=True) as conn:
            jobs = conn.execute("select jobname, schedule, command from cron.job").fetchall()
            assert sorted((job, schedule) for job, schedule, _ in jobs) == [
                ("meta_webhook_sweep", "* * * * *"),
                ("place_call_sweep", "* * * * *"),
            ]
            assert all(token not in command for _, _, command in jobs)
            assert conn.execute("select secret from vault.secrets").fetchall() == [(token,)]
            for _, _, command in jobs:
                conn.execute(command)  # what pg_cron runs every minute
            sent = conn.execute("select url, headers, timeout_milliseconds from net.sent")
            assert sorted(sent.fetchall()) == [
                (
                    f"{BASE}/{function}/sweep",
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    60000,
                )
                for function in ("meta_webhook", "place_call")
            ]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"drop database {name} with (force)")
