"""The README's "Going live", followed end to end as a new user would: `supabase/.env` copied from
the example and filled in, Calendly subscribed, a dry run, the deploy, its smoke test, the
ElevenLabs webhook's retries, then the deploy again and a rotation. Only the outside world is
faked: the ``gcloud`` and ``supabase`` executables (a project that keeps what they made), the
Calendly and ElevenLabs APIs, and Google's front end, which here routes each function's
``cloudfunctions.net`` URL to the same function served locally."""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import httpx

from tests.conftest import CALENDLY_TOKEN, CalendlyFake, ElevenLabsFake, Functions
from tests.test_deploy import BASE, EXAMPLE, Deployer, Run
from tools.build.functions import function, function_names
from tools.deploy import smoke
from tools.fakes.elevenlabs_fake import workspace_webhook
from tools.ops import calendly_subscribe, elevenlabs_webhook
from tools.stack import envfile

EXAMPLE_FILE = Path(__file__).resolve().parents[1] / "supabase" / ".env.example"


class GoogleFrontEnd(httpx.BaseTransport):
    """``https://<region>-<project>.cloudfunctions.net/<name>/<path>`` → the function
    ``<name>`` served locally, at ``<path>``."""

    def __init__(self, functions: Functions) -> None:
        self.functions = functions
        self.inner = httpx.HTTPTransport()
        self.hosts: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.add(request.url.host)
        name, _, rest = request.url.path.lstrip("/").partition("/")
        local = httpx.URL(self.functions.url(name, f"/{rest}" if rest else "")).copy_with(
            query=request.url.query
        )
        request.url = local
        request.headers["host"] = local.netloc.decode()
        return self.inner.handle_request(request)


def versions_added(run: Run) -> dict[str, str | None]:
    return {
        call[4]: stdin
        for call, stdin in zip(run.calls, run.stdins, strict=True)
        if call[1:4] == ["secrets", "versions", "add"]
    }


def test_going_live_from_the_readme_end_to_end(
    tmp_path: Path,
    functions: Functions,
    calendly_fake_api: CalendlyFake,
    elevenlabs_fake: ElevenLabsFake,
) -> None:
    calendly_fake_api.reset()
    elevenlabs_fake.reset()
    deploy = Deployer(tmp_path)
    env_file = deploy.paths.env_file
    front = GoogleFrontEnd(functions)

    def smoke_through_google(found: list[smoke.Probe]) -> list[smoke.Row]:
        with httpx.Client(transport=front, timeout=30) as client:
            return smoke.run(found, client)

    deploy.smoke = smoke_through_google
    state = {"FAKE_CLI_STATE": str(tmp_path / "project.json")}

    # 1-4. `cp supabase/.env.example supabase/.env`, then each value the steps name. The
    # tokens the smoke test presents are those of the functions served here.
    env_file.write_text(EXAMPLE_FILE.read_text())
    env_file.chmod(0o600)
    filled = {
        **{k: v for k, v in EXAMPLE.items() if k != "CALENDLY_SIGNING_KEY"},
        "INTERNAL_TOKEN": functions.env["INTERNAL_TOKEN"].split(",")[0].strip(),
        "META_VERIFY_TOKEN": functions.env["META_VERIFY_TOKEN"],
        "CALENDLY_API_TOKEN": CALENDLY_TOKEN,
    }
    envfile.update(env_file, filled)
    deploy.link()

    # 5. Calendly: the URL is known before the first deploy; the key lands in supabase/.env.
    out, err = io.StringIO(), io.StringIO()
    code = calendly_subscribe.main(
        ["--url", f"{BASE}/calendly_webhook", "--env-file", str(env_file)],
        {"CALENDLY_API_TOKEN": CALENDLY_TOKEN, "CALENDLY_API_URL": calendly_fake_api.base},
        out=out,
        err=err,
        http=calendly_fake_api.http,
    )
    assert code == 0, err.getvalue()
    signing_key = envfile.read(env_file)["CALENDLY_SIGNING_KEY"]
    assert signing_key and signing_key not in out.getvalue() + err.getvalue()

    # 6. A dry run changes nothing and shows the whole plan.
    dry = deploy("--dry-run", env=None, environ=state)
    assert dry.code == 0, dry.output
    assert not (tmp_path / "project.json").exists()  # no command ran
    for shown in (
        "secrets create speed-to-lead-calendly-signing-key",
        "service-accounts create stl-place-call",
        "service-accounts create stl-build",
        "--build-service-account=",
        "--min-instances=1",
        "a month (Cloud Run pricing",
        "Smoke test, after a real deploy (9 probes):",
    ):
        assert shown in dry.output, shown

    # Then the deploy: every secret from the file (the Calendly key as stored) reaches Secret
    # Manager, the smoke test passes through Google's front end, no secret is left in build/.
    real = deploy(env=None, environ=state)
    assert real.code == 0, real.output
    assert "Smoke test: 9 of 9 probes as expected" in real.output
    assert front.hosts == {BASE.removeprefix("https://")}
    added = versions_added(real)
    assert added["speed-to-lead-calendly-signing-key"] == signing_key
    assert added["speed-to-lead-internal-token"] == filled["INTERNAL_TOKEN"]
    kept = real_secrets(env_file)
    assert len(kept) >= 8
    for path in deploy.paths.build.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode(errors="replace")
            assert not [value for value in kept if value in text], path
    assert "make elevenlabs-webhook ENV=production" in real.output

    # The ElevenLabs webhook a workspace admin created (retries off, ElevenLabs' default): the
    # command the deploy names turns them on.
    elevenlabs_fake.put(
        "webhooks",
        [workspace_webhook(f"{BASE}/place_call/webhook", retry_enabled=False)],  # type: ignore[arg-type]
    )
    production = {
        **envfile.read(env_file),
        "ELEVENLABS_API_KEY": "sk_test_elevenlabs_key",
        "ELEVENLABS_API_URL": elevenlabs_fake.base,
    }
    assert elevenlabs_webhook.main(production) == 0
    [patch] = [r for r in elevenlabs_fake.requests() if r["method"] == "PATCH"]
    assert json.loads(patch["body"])["retry_enabled"] is True

    # `make deploy` again: safe, nothing created twice, no new secret version.
    again = deploy(env=None, environ=state)
    assert again.code == 0, again.output
    assert versions_added(again) == {}
    assert "(unchanged: skipped)" in again.output
    assert not [c for c in again.calls if "create" in c]

    # A rotation (`new,old`): one new version, of that secret only.
    rotated = f"{secrets.token_urlsafe(32)},{filled['INTERNAL_TOKEN']}"
    envfile.update(env_file, {"INTERNAL_TOKEN": rotated})
    deploy.smoke = None  # the functions served here know the old token only
    turned = deploy(env=None, environ=state)
    assert turned.code == 0, turned.output
    assert versions_added(turned) == {"speed-to-lead-internal-token": rotated}
    project = json.loads((tmp_path / "project.json").read_text())
    assert project["versions"]["speed-to-lead-internal-token"] == [
        filled["INTERNAL_TOKEN"],
        rotated,
    ]


def real_secrets(env_file: Path) -> list[str]:
    """The values in ``env_file`` of the variables that are secrets, each of a pair apart."""
    names = {v.name for n in function_names() for v in function(n).variables if v.secret}
    return [
        part.strip()
        for name, value in envfile.read(env_file).items()
        if name in names
        for part in value.split(",")
        if part.strip()
    ]
