"""`make dev` as a user runs it: the stack comes up, the functions answer, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg

from lib.signatures import sign_meta
from tools import envfile
from tools import stack as local_stack
from tools.samples import leadgen_delivery, new_leadgen_id


def test_dev_serves_handshake_and_delivery_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = local_stack.free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONPATH": str(local_stack.ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.dev", "--state-dir", str(tmp_path), "--sweep-every", "0.2"],
        cwd=local_stack.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        local_stack.wait_until(local_stack.http_ok(f"{base}/health"), what="make dev", timeout=90)
        dev_env = envfile.read(tmp_path / "dev.env")
        assert {
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "DATABASE_URL",
            "META_APP_SECRET",
            "META_VERIFY_TOKEN",
            "META_ACCESS_TOKEN",
            "META_GRAPH_URL",
            "INTERNAL_TOKEN",
        } <= set(dev_env)

        url = f"{base}/functions/v1/meta_webhook"
        handshake = httpx.get(
            url,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "7",
                "hub.verify_token": dev_env["META_VERIFY_TOKEN"],
            },
        )
        assert (handshake.status_code, handshake.text) == (200, "7")
        lid = new_leadgen_id()
        body = leadgen_delivery(lid)
        delivery = httpx.post(
            url,
            content=body,
            headers={"X-Hub-Signature-256": sign_meta(body, secret=dev_env["META_APP_SECRET"])},
        )
        assert delivery.status_code == 200
        with psycopg.connect(dev_env["DATABASE_URL"]) as conn:
            row = conn.execute(
                "select status, phone from leads where meta_leadgen_id = %s", (lid,)
            ).fetchone()
        assert row is not None
        assert row[0] == "fetched"
        assert row[1] is not None and row[1].startswith("+1")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode()
    assert b"sweep: 200" in output
    assert not (tmp_path / "stack" / "pg" / "postmaster.pid").exists()
