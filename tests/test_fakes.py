"""The fakes' shared base (tools/fakes/fake_api.py), through the Graph fake of the test stack."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from tools.fakes.samples import new_leadgen_id
from tools.stack import local as local_stack

from .conftest import GraphFake


def get_lead(graph: GraphFake, leadgen_id: str, token: str, proof: str) -> httpx.Response:
    return httpx.get(
        f"{graph.base}/v25.0/{leadgen_id}",
        params={"access_token": token, "appsecret_proof": proof},
    )


def credentials(stack: local_stack.Stack) -> tuple[str, str]:
    """The stack's access token and its appsecret_proof, as the Graph fake checks them."""
    token = stack.env["META_ACCESS_TOKEN"]
    secret = stack.env["META_APP_SECRET"].encode()
    return token, hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def test_fake_records_requests_by_key_and_serves_scripts_first(
    graph: GraphFake, stack: local_stack.Stack
) -> None:
    token, proof = credentials(stack)
    lid = new_leadgen_id()
    graph.script(lid, {"status": 503, "body": {"error": {"code": 2}}})
    first, second = (get_lead(graph, lid, token, proof) for _ in range(2))
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.json()["id"] == lid
    recorded = graph.requests(lid)
    assert [r["key"] for r in recorded] == [lid, lid]
    assert recorded[0]["seq"] < recorded[1]["seq"]
    assert graph.count(lid) == 2


def test_fake_faults_answer_every_nth_request_until_stopped(
    graph: GraphFake, stack: local_stack.Stack
) -> None:
    token, proof = credentials(stack)
    graph.faults(every=3, status=503, body={"error": {"code": 2, "message": "down"}})
    try:
        statuses = [get_lead(graph, new_leadgen_id(), token, proof).status_code for _ in range(9)]
    finally:
        graph.faults(every=0)
    assert statuses.count(503) == 3
    assert get_lead(graph, new_leadgen_id(), token, proof).status_code == 200
