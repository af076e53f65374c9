"""`make calendly-subscribe` (tools/ops/calendly_subscribe.py) against the Calendly API fake
served on loopback, the Calendly API client (calendly_api) against Calendly's recorded answers,
and the fake's shapes against the same recordings (tests/fixtures/calendly)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import tools
from lib.errors import FailureClass, ProviderFailure
from tools.fakes import calendly_fake
from tools.ops import calendly_api, calendly_errors, calendly_subscribe
from tools.stack import envfile
from tools.stack import local as local_stack

from .conftest import (
    CALENDLY_TOKEN,
    FIXTURES,
    CalendlyFake,
)

URL = "https://example.test/functions/v1/calendly_webhook"
FOUR_EVENTS = [
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
]
LIST = "GET /webhook_subscriptions"
CREATE = "POST /webhook_subscriptions"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / "calendly" / name).read_text())


@pytest.fixture
def fake(calendly_fake_api: CalendlyFake) -> CalendlyFake:
    """The fake, with no subscription, script or request from an earlier test."""
    calendly_fake_api.reset()
    return calendly_fake_api


class Run:
    """One run of the tool, in process: its exit code and what it printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return tmp_path / "project" / "supabase" / ".env"


def subscribe(
    fake: CalendlyFake, env_file: Path, *args: str, env: dict[str, str] | None = None
) -> Run:
    out, err = io.StringIO(), io.StringIO()
    settings = {"CALENDLY_API_TOKEN": CALENDLY_TOKEN, "CALENDLY_API_URL": fake.base, **(env or {})}
    code = calendly_subscribe.main(
        ["--url", URL, "--env-file", str(env_file), *args],
        settings,
        out=out,
        err=err,
        http=fake.http,
    )
    run = Run(code, out.getvalue(), err.getvalue())
    # Whatever happened, no signing key is ever printed.
    keys = stored(env_file) + [str(s["signing_key"]) for s in fake.subscriptions()]
    for key in keys:
        assert key not in run.out + run.err
    return run


def stored(env_file: Path) -> list[str]:
    return calendly_subscribe.stored_keys(envfile.read(env_file))


def only_subscription(fake: CalendlyFake) -> dict[str, Any]:
    [subscription] = fake.subscriptions()
    return subscription


# --- subscribing -----------------------------------------------------------------------------


def test_subscribe_new_url_creates_subscription_and_stores_its_key(
    fake: CalendlyFake, env_file: Path
) -> None:
    run = subscribe(fake, env_file)

    assert run.code == 0, run.err
    subscription = only_subscription(fake)
    assert subscription["callback_url"] == URL
    assert subscription["events"] == FOUR_EVENTS
    assert subscription["scope"] == "organization"
    assert subscription["state"] == "active"
    assert stored(env_file) == [subscription["signing_key"]]
    assert len(subscription["signing_key"]) >= 43  # token_urlsafe(32)
    assert envfile.read(env_file)["CALENDLY_WEBHOOK_URL"] == URL
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"Subscribed: {subscription['uri']}" in run.out
    assert fake.operations() == ["GET /users/me", LIST, LIST, CREATE]


def test_subscribe_keeps_every_other_line_of_the_env_file(
    fake: CalendlyFake, env_file: Path
) -> None:
    env_file.parent.mkdir(parents=True)
    before = "# Supabase\nSUPABASE_URL=https://x.supabase.co\n\nCALENDLY_SIGNING_KEY=\n# end\nA=1"
    env_file.write_text(before)
    env_file.chmod(0o644)

    run = subscribe(fake, env_file)

    assert run.code == 0, run.err
    key = only_subscription(fake)["signing_key"]
    assert env_file.read_text() == (
        "# Supabase\nSUPABASE_URL=https://x.supabase.co\n\n"
        f"CALENDLY_SIGNING_KEY={key}\n# end\nA=1\nCALENDLY_WEBHOOK_URL={URL}\n"
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_subscribe_user_scope_subscribes_the_tokens_user(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file, "--scope", "user").code == 0

    subscription = only_subscription(fake)
    assert subscription["scope"] == "user"
    assert subscription["user"] == subscription["creator"]
    assert subscription["user"].endswith(f"/users/{calendly_fake.USER_UUID}")


def test_subscribe_with_another_scope_re_creates_it_never_keeps_the_old_silently(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0  # organization
    run = subscribe(fake, env_file, "--scope", "user")
    assert run.code == 0, run.err
    assert "Scope user asked" in run.out
    assert only_subscription(fake)["scope"] == "user"


def test_subscribe_refuses_a_url_that_is_not_https(
    fake: CalendlyFake, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        calendly_subscribe.parser().parse_args(["--url", "http://example.test/calendly_webhook"])
    assert "is not https" in capsys.readouterr().err
    local = calendly_subscribe.parser().parse_args(["--url", "http://127.0.0.1:8080/x"])
    assert local.url == "http://127.0.0.1:8080/x"  # make dev's own


@pytest.mark.parametrize("scope", ["organization", "user"])
def test_subscribe_again_when_active_changes_nothing(
    fake: CalendlyFake, env_file: Path, scope: str
) -> None:
    assert subscribe(fake, env_file, "--scope", scope).code == 0
    before, first = env_file.read_bytes(), only_subscription(fake)
    mark = fake.mark()

    run = subscribe(fake, env_file)  # the default scope finds the other one too

    assert run.code == 0, run.err
    assert run.out.splitlines()[-1].startswith(f"Already subscribed: {first['uri']} (active")
    assert "Nothing changed; the stored CALENDLY_SIGNING_KEY is kept." in run.out
    assert run.err == ""
    assert env_file.read_bytes() == before
    assert fake.subscriptions() == [first]
    assert fake.operations(after=mark) == ["GET /users/me", LIST, LIST]


def test_subscribe_409_from_calendly_changes_nothing(fake: CalendlyFake, env_file: Path) -> None:
    assert subscribe(fake, env_file).code == 0
    before, first = env_file.read_bytes(), only_subscription(fake)
    # One this token cannot list (another scope or user): only the create tells.
    empty = {"collection": [], "pagination": {"count": 0, "next_page": None}}
    fake.script(LIST, {"body": empty}, {"body": empty})

    run = subscribe(fake, env_file)

    assert run.code == 0, run.err
    assert "Already subscribed: Calendly already has a webhook subscription" in run.out
    assert "Hook with this url already exists" in run.out
    assert env_file.read_bytes() == before
    assert fake.subscriptions() == [first]
    assert fake.operations()[-1] == CREATE


def test_subscribe_disabled_recreates_with_a_new_key_then_deletes_the_old(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    old = only_subscription(fake)
    fake.change(old["uri"], state="disabled")
    mark = fake.mark()

    run = subscribe(fake, env_file)

    assert run.code == 0, run.err
    new = only_subscription(fake)
    assert new["uri"] != old["uri"]
    assert new["state"] == "active"
    assert new["events"] == FOUR_EVENTS
    assert new["signing_key"] != old["signing_key"]
    assert stored(env_file) == [new["signing_key"]]
    old_path = "/webhook_subscriptions/" + old["uri"].rsplit("/", 1)[-1]
    # The create is tried first; Calendly's 409 makes the old one go before the new one comes.
    assert fake.operations(after=mark) == [
        "GET /users/me",
        LIST,
        LIST,
        CREATE,
        f"DELETE {old_path}",
        CREATE,
    ]
    assert f"Deleted {old['uri']}" in run.out


class Recording(calendly_api.CalendlyClient):
    """The real client, noting the stored keys at each call that changes Calendly."""

    def __init__(self, env_file: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.env_file = env_file
        self.seen: list[tuple[str, list[str], str | None]] = []

    def create_subscription(self, **kwargs: Any) -> dict[str, Any]:
        self.seen.append(("create", stored(self.env_file), kwargs["signing_key"]))
        return super().create_subscription(**kwargs)

    def delete_subscription(self, uri: str) -> None:
        self.seen.append(("delete", stored(self.env_file), None))
        super().delete_subscription(uri)


def test_subscribe_disabled_stores_both_keys_before_anything_changes(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    old = only_subscription(fake)
    fake.change(old["uri"], state="disabled")
    client = Recording(
        env_file, base_url=fake.base, token=CALENDLY_TOKEN, timeout=5, http_client=fake.http
    )

    code = calendly_subscribe.Subscriber(client, env_file, io.StringIO(), io.StringIO()).run(
        url=URL, scope=None, recreate=False
    )

    assert code == 0
    new_key = only_subscription(fake)["signing_key"]
    both = [new_key, old["signing_key"]]
    assert client.seen == [
        ("create", both, new_key),
        ("delete", both, None),
        ("create", both, new_key),
    ]
    assert stored(env_file) == [new_key]


def test_subscribe_active_but_retrying_warns_and_recreate_replaces_it(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    old = only_subscription(fake)
    fake.change(old["uri"], retry_started_at="2026-11-27T10:00:00.000000Z")
    before = env_file.read_bytes()

    kept = subscribe(fake, env_file)

    assert kept.code == 0
    assert "retrying failed deliveries since 2026-11-27T10:00:00.000000Z" in kept.err
    assert env_file.read_bytes() == before
    assert [(s["uri"], s["signing_key"]) for s in fake.subscriptions()] == [
        (old["uri"], old["signing_key"])
    ]

    replaced = subscribe(fake, env_file, "--recreate")

    assert replaced.code == 0, replaced.err
    new = only_subscription(fake)
    assert new["uri"] != old["uri"]
    assert new["retry_started_at"] is None
    assert stored(env_file) == [new["signing_key"]]


def test_subscribe_active_without_stored_key_says_to_recreate(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    env_file.unlink()

    run = subscribe(fake, env_file)

    assert run.code == 0
    assert "no CALENDLY_SIGNING_KEY in" in run.err
    assert "--recreate (RECREATE=1)" in run.err
    assert not env_file.exists()


def test_subscribe_active_without_every_event_says_which_are_missing(
    fake: CalendlyFake, env_file: Path
) -> None:
    user = me(fake)
    created = api_create(
        fake,
        url=URL,
        events=["invitee.created", "invitee.canceled"],
        organization=user["current_organization"],
        scope="organization",
    )
    assert created.status_code == 201

    run = subscribe(fake, env_file)

    assert run.code == 0
    assert "it lacks invitee_no_show.created, invitee_no_show.deleted; --recreate" in run.err


def test_subscribe_create_timed_out_keeps_the_new_key_for_the_rerun(
    fake: CalendlyFake, env_file: Path
) -> None:
    # It may have been created: the key it was given must not be lost.
    fake.script(CREATE, {"status": 201, "body": {}, "delay": 1.0})
    client = Recording(
        env_file, base_url=fake.base, token=CALENDLY_TOKEN, timeout=0.3, http_client=fake.http
    )
    err = io.StringIO()

    code = calendly_subscribe.Subscriber(client, env_file, io.StringIO(), err).run(
        url=URL, scope=None, recreate=False
    )

    assert code == 2
    assert "did not answer within 0.3 s" in err.getvalue()
    [(_, _, given)] = client.seen
    assert stored(env_file) == [given]


def test_subscribe_plan_without_webhooks_exits_1_with_calendlys_message(
    fake: CalendlyFake, env_file: Path
) -> None:
    fake.plan(webhooks=False)

    run = subscribe(fake, env_file)

    assert run.code == 1
    assert '"Please upgrade your Calendly account to Professional"' in run.err
    assert fake.subscriptions() == []
    assert not env_file.exists()


def test_subscribe_disabled_and_plan_refused_leaves_old_subscription_and_file(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    old = only_subscription(fake)
    fake.change(old["uri"], state="disabled")
    before = env_file.read_bytes()
    fake.plan(webhooks=False)

    run = subscribe(fake, env_file)

    assert run.code == 1
    assert "Please upgrade your Calendly account" in run.err
    assert [s["uri"] for s in fake.subscriptions()] == [old["uri"]]
    assert env_file.read_bytes() == before


def test_subscribe_replacement_refused_after_delete_restores_file_and_says_so(
    fake: CalendlyFake, env_file: Path
) -> None:
    assert subscribe(fake, env_file).code == 0
    old = only_subscription(fake)
    fake.change(old["uri"], state="disabled")
    before = env_file.read_bytes()
    fake.script(
        CREATE,
        {"status": 409, "body": fixture("calendly_error_409_already_exists.json")},
        {"status": 503, "body": {"title": "Service Unavailable", "message": "try later"}},
    )

    run = subscribe(fake, env_file)

    assert run.code == 2
    assert "HTTP 503" in run.err
    assert "the 1 old subscription(s) were deleted, so run this again" in run.err
    assert fake.subscriptions() == []
    assert env_file.read_bytes() == before

    again = subscribe(fake, env_file)

    assert again.code == 0, again.err
    assert stored(env_file) == [only_subscription(fake)["signing_key"]]


def test_subscribe_missing_token_exits_2(fake: CalendlyFake, env_file: Path) -> None:
    run = subscribe(fake, env_file, env={"CALENDLY_API_TOKEN": ""})

    assert run.code == 2
    assert run.err.startswith("calendly_subscribe: CALENDLY_API_TOKEN is not set: create a ")
    assert fake.operations() == []
    assert not env_file.exists()


def test_subscribe_wrong_token_exits_1_saying_what_to_do(
    fake: CalendlyFake, env_file: Path
) -> None:
    run = subscribe(fake, env_file, env={"CALENDLY_API_TOKEN": "not-the-token-4711"})

    assert run.code == 1
    assert "HTTP 401" in run.err
    assert calendly_errors.CREDENTIALS_HELP in run.err
    assert "not-the-token-4711" not in run.err
    assert not env_file.exists()


def test_subscribe_unreachable_api_exits_2(fake: CalendlyFake, env_file: Path) -> None:
    dead = f"http://127.0.0.1:{local_stack.free_port()}"

    run = subscribe(fake, env_file, env={"CALENDLY_API_URL": dead})

    assert run.code == 2
    assert "The Calendly API is unreachable" in run.err
    assert not env_file.exists()


def test_subscribe_runs_as_a_module(fake: CalendlyFake, env_file: Path) -> None:
    environment = {
        **os.environ,
        "CALENDLY_API_TOKEN": CALENDLY_TOKEN,
        "CALENDLY_API_URL": fake.base,
        "PYTHONPATH": tools.PYTHONPATH,
    }
    command = [sys.executable, "-m", "tools.ops.calendly_subscribe", "--url", URL]
    result = subprocess.run(
        [*command, "--env-file", str(env_file)],
        env=environment,
        cwd=local_stack.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    key = only_subscription(fake)["signing_key"]
    assert stored(env_file) == [key]
    assert key not in result.stdout + result.stderr


def test_subscribe_relative_url_is_refused() -> None:
    with pytest.raises(SystemExit) as exit_:
        calendly_subscribe.parser().parse_args(["--url", "calendly_webhook"])
    assert exit_.value.code == 2


# --- the fake answers as Calendly's recordings do ---------------------------------------------


def api_get(
    fake: CalendlyFake, path: str, token: str = CALENDLY_TOKEN, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return fake.http.get(path, params=params, headers=headers)


def api_create(fake: CalendlyFake, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {CALENDLY_TOKEN}"}
    return fake.http.post("/webhook_subscriptions", json=body, headers=headers)


def me(fake: CalendlyFake) -> dict[str, Any]:
    return dict(api_get(fake, "/users/me").json()["resource"])


def test_fake_answers_in_calendlys_shapes(fake: CalendlyFake) -> None:
    user = me(fake)
    assert set(user) >= set(fixture("calendly_users_me_openapi2024.json")["resource"])
    request = fixture("calendly_webhook_subscription_create_request.json")
    request.update(organization=user["current_organization"], user=user["uri"])

    created = api_create(fake, **request)
    again = api_create(fake, **request)
    listed = api_get(
        fake,
        "/webhook_subscriptions",
        organization=user["current_organization"],
        scope="user",
        user=user["uri"],
    )

    assert created.status_code == 201
    resource = created.json()["resource"]
    assert list(resource) == list(fixture("calendly_webhook_subscription_created.json")["resource"])
    assert resource["uri"].startswith(f"{fake.base}/webhook_subscriptions/")
    assert (again.status_code, again.json()) == (
        409,
        fixture("calendly_error_409_already_exists.json"),
    )
    recorded = fixture("calendly_webhook_subscription_list.json")
    assert list(listed.json()) == list(recorded)
    assert set(listed.json()["pagination"]) == set(recorded["pagination"])
    assert listed.json()["collection"] == [resource]
    assert fake.subscriptions()[0]["signing_key"] == request["signing_key"]


def test_fake_errors_in_calendlys_shapes(fake: CalendlyFake) -> None:
    fake.plan(webhooks=False)
    user = me(fake)

    refused = api_create(
        fake,
        url=URL,
        events=["invitee.created"],
        organization=user["current_organization"],
        scope="organization",
    )
    unauthenticated = api_get(fake, "/users/me", token="wrong")
    missing = api_get(fake, "/webhook_subscriptions/NOSUCHUUID")

    assert refused.status_code == 403
    assert refused.json() == fixture("calendly_error_403_upgrade.json")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == fixture(
        "calendly_error_401_unauthenticated_reconstructed.json"
    )
    assert missing.status_code == 404
    recorded = fixture("calendly_error_404_not_found.json")
    assert {k: missing.json()[k] for k in ("title", "message")} == {
        k: recorded[k] for k in ("title", "message")
    }


def test_fake_pages_with_next_page(fake: CalendlyFake) -> None:
    user = me(fake)
    organization = user["current_organization"]
    for n in range(3):
        assert (
            api_create(
                fake,
                url=f"{URL}?n={n}",
                events=["invitee.created"],
                organization=organization,
                scope="organization",
            ).status_code
            == 201
        )

    first = api_get(
        fake, "/webhook_subscriptions", organization=organization, scope="organization", count=2
    ).json()
    second = fake.http.get(
        first["pagination"]["next_page"], headers={"Authorization": f"Bearer {CALENDLY_TOKEN}"}
    ).json()

    assert [len(first["collection"]), len(second["collection"])] == [2, 1]
    assert second["pagination"]["next_page"] is None


# --- calendly_api against recorded answers (httpx.MockTransport) ------------------------------

BASE = "https://api.calendly.test"


def client_answering(
    answer: Any, seen: list[httpx.Request] | None = None
) -> calendly_api.CalendlyClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer(request) if callable(answer) else answer

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return calendly_api.CalendlyClient(
        base_url=BASE, token=CALENDLY_TOKEN, timeout=5, http_client=http
    )


def test_api_me_reads_the_user_with_the_bearer_token() -> None:
    seen: list[httpx.Request] = []
    recorded = fixture("calendly_users_me_openapi2024.json")
    client = client_answering(httpx.Response(200, json=recorded), seen)

    assert client.me() == recorded["resource"]
    assert seen[0].url == f"{BASE}/users/me"
    assert seen[0].headers["Authorization"] == f"Bearer {CALENDLY_TOKEN}"


def test_api_list_follows_next_page_keeping_the_query() -> None:
    recorded = fixture("calendly_webhook_subscription_list.json")
    first = {
        **recorded,
        "pagination": {
            **recorded["pagination"],
            # Calendly's example: only count and page_token.
            "next_page": f"{BASE}/webhook_subscriptions?count=1&page_token=NEXT",
        },
    }
    last = {"collection": [{"uri": "second"}], "pagination": {"next_page": None}}
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=last if "page_token" in request.url.params else first)

    found = client_answering(answer, seen).list_subscriptions("ORG", "user", "USER")

    assert found == [*recorded["collection"], {"uri": "second"}]
    assert [dict(r.url.params) for r in seen] == [
        {"organization": "ORG", "scope": "user", "count": "100", "user": "USER"},
        {
            "organization": "ORG",
            "scope": "user",
            "count": "1",
            "user": "USER",
            "page_token": "NEXT",
        },
    ]


def test_api_list_next_page_on_another_host_is_not_followed() -> None:
    page = {"collection": [], "pagination": {"next_page": "https://evil.test/x?page_token=1"}}
    seen: list[httpx.Request] = []

    with pytest.raises(ProviderFailure) as failure:
        client_answering(httpx.Response(200, json=page), seen).list_subscriptions(
            "O", "organization"
        )

    assert failure.value.failure_class is FailureClass.MALFORMED
    assert [r.url.host for r in seen] == ["api.calendly.test"]


def test_api_create_sends_calendlys_request_shape() -> None:
    recorded = fixture("calendly_webhook_subscription_create_request.json")
    seen: list[httpx.Request] = []
    created = fixture("calendly_webhook_subscription_created.json")
    client = client_answering(httpx.Response(201, json=created), seen)

    resource = client.create_subscription(
        url=recorded["url"],
        events=recorded["events"],
        organization=recorded["organization"],
        scope=recorded["scope"],
        user=recorded["user"],
        signing_key=recorded["signing_key"],
    )

    assert resource == created["resource"]
    assert json.loads(seen[0].content) == recorded


def test_api_delete_goes_to_the_configured_api_whatever_the_uri_host() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(httpx.Response(204), seen)

    client.delete_subscription("https://elsewhere.test/webhook_subscriptions/AAAA-1")

    assert (seen[0].method, str(seen[0].url)) == ("DELETE", f"{BASE}/webhook_subscriptions/AAAA-1")
    with pytest.raises(ProviderFailure) as failure:
        client.delete_subscription("https://api.calendly.com/webhook_subscriptions/../users/me")
    assert failure.value.code == "calendly_subscription_uri_invalid"


@pytest.mark.parametrize(
    ("status", "body", "failure_class", "code", "says"),
    [
        (
            401,
            fixture("calendly_error_401_unauthenticated_reconstructed.json"),
            FailureClass.AUTH,
            "calendly_token_invalid",
            calendly_errors.CREDENTIALS_HELP,
        ),
        (
            403,
            fixture("calendly_error_403_upgrade.json"),
            FailureClass.PERMISSION,
            "calendly_permission_denied",
            '"Please upgrade your Calendly account to Professional"',
        ),
        (
            409,
            fixture("calendly_error_409_already_exists.json"),
            FailureClass.INVALID,
            calendly_errors.SUBSCRIPTION_EXISTS,
            '"Hook with this url already exists"',
        ),
        (
            404,
            fixture("calendly_error_404_not_found.json"),
            FailureClass.NOT_FOUND,
            "calendly_not_found",
            "The server could not find the requested resource.",
        ),
        (429, {}, FailureClass.THROTTLED, "calendly_rate_limited", "HTTP 429"),
        (503, None, FailureClass.TRANSIENT, "calendly_unavailable", "HTTP 503"),
        (
            400,
            {
                "title": "Invalid Argument",
                "message": "The supplied parameters are invalid.",
                "details": [{"parameter": "url", "message": "must be https"}],
            },
            FailureClass.INVALID,
            "calendly_request_refused",
            "The supplied parameters are invalid.; url: must be https",
        ),
    ],
    ids=["401", "403_plan", "409", "404", "429", "503", "400_details"],
)
def test_api_error_answers_are_classified_with_calendlys_message(
    status: int, body: Any, failure_class: FailureClass, code: str, says: str
) -> None:
    answer = httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    with pytest.raises(ProviderFailure) as failure:
        client_answering(answer).me()

    assert failure.value.failure_class is failure_class
    assert failure.value.code == code
    assert says in failure.value.message
    assert CALENDLY_TOKEN not in failure.value.message


def test_api_answer_of_another_shape_is_malformed() -> None:
    with pytest.raises(ProviderFailure) as failure:
        client_answering(httpx.Response(200, text="<html>")).me()

    assert failure.value.code == "calendly_answer_malformed"
