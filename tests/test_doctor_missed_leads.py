"""`make doctor`'s checks against missed leads (issue 17, part 2), with the Graph fake: the app's
Page subscription is active, has leadgen and calls back the deployed meta_webhook, and the token
can read a form's leads (Leads Access Manager may have cut the app off)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lib.signatures import appsecret_proof
from tools.fakes.graph_fake import graph_error
from tools.fakes.samples import FORM_ID, PAGE_ID
from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import meta as doctor_meta

from .conftest import Functions, GraphFake


@pytest.fixture
def fake(graph: GraphFake) -> Iterator[GraphFake]:
    yield graph
    graph.http.put("/_fake/app_subscription", json={}).raise_for_status()


def result(functions: Functions, check: Any, **changes: str) -> doctor_core.Result:
    env = {**functions.env, "META_PAGE_ID": PAGE_ID, **changes}
    with doctor_core.Context(env) as ctx:
        return check(ctx)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("subscription", "changes", "status", "words"),
    [
        ({}, {}, "ok", "app 1234567890, Page object, leadgen, active, callback https://example"),
        (None, {}, "FAIL", "has no Page subscription, so Meta sends no lead"),
        ({"active": False}, {}, "FAIL", "is not active; verify it again"),
        ({"fields": [{"name": "feed"}]}, {}, "FAIL", "lacks the leadgen field"),
        (
            {"callback_url": "https://europe-west1-acme.cloudfunctions.net/meta_webhook"},
            {"GCP_PROJECT": "acme", "GCP_REGION": "europe-west1"},
            "ok",
            "callback https://europe-west1-acme.cloudfunctions.net/meta_webhook",
        ),
        (
            {},
            {"GCP_PROJECT": "acme", "GCP_REGION": "europe-west1"},
            "FAIL",
            "not the deployed https://europe-west1-acme.cloudfunctions.net/meta_webhook",
        ),
    ],
    ids=["default", "none", "inactive", "no_leadgen", "deployed_url", "another_url"],
)
def test_doctor_app_subscription(
    functions: Functions,
    fake: GraphFake,
    subscription: dict[str, Any] | None,
    changes: dict[str, str],
    status: str,
    words: str,
) -> None:
    fake.http.put("/_fake/app_subscription", json=subscription).raise_for_status()

    line = result(functions, doctor_meta.check_app_subscription, **changes)

    assert line.status == status, line.message
    assert words in line.message
    assert line.message.startswith("app subscription: ")


def test_doctor_reads_a_form_s_leads_and_names_leads_access_when_refused(
    functions: Functions, fake: GraphFake
) -> None:
    fine = result(functions, doctor_meta.check_leads_readable)
    assert fine.status == doctor_core.OK, fine.message
    assert fine.message.startswith("lead access: the token reads the leads of form ")

    forms = fake.http.get(f"/v25.0/{PAGE_ID}/leadgen_forms", params=_credentials(functions))
    first = str(forms.json()["data"][0]["id"]) if forms.status_code == 200 else FORM_ID
    refused = {"status": 400, "body": graph_error("(#200) Requires leads access", 200)}
    fake.script(f"{first}/leads", refused)
    cut = result(functions, doctor_meta.check_leads_readable)
    assert cut.status == doctor_core.FAIL, cut.message
    assert "Leads access, give the app (CRM) access" in cut.message


def _credentials(functions: Functions) -> dict[str, str]:
    token = functions.env["META_ACCESS_TOKEN"]
    secret = functions.env["META_APP_SECRET"].split(",")[0].strip()
    return {"access_token": token, "appsecret_proof": appsecret_proof(token, app_secret=secret)}
