"""meta_webhook: Meta Lead Ads webhooks in, leads out.

- ``GET``: the subscription handshake (echo ``hub.challenge`` for the right verify token).
- ``POST``: a signed leadgen delivery: verify, parse, store, fetch from the Graph API, complete.
- ``POST /sweep`` (``Authorization: Bearer $INTERNAL_TOKEN``): complete fetch_pending leads.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from lib import meta
from lib.config import get_config
from lib.db import get_db
from lib.errors import MethodNotAllowed
from lib.http import (
    endpoint,
    json_response,
    read_body,
    require_internal_token,
    subpath,
    text_response,
)
from lib.signatures import verify_meta


@functions_framework.http
@endpoint("meta_webhook", provider="meta")
def meta_webhook(request: Request) -> Response:
    config = get_config()
    if request.method == "GET":
        (verify_token,) = config.require("META_VERIFY_TOKEN")
        return text_response(meta.verify_subscription(request.args, verify_token=verify_token))
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not supported: use GET or POST.")
    if subpath(request) == "/sweep":
        require_internal_token(request)
        return json_response(meta.sweep(get_db(), limit=config.sweep_batch_size))
    body = read_body(request, limit=config.max_body_bytes)
    verify_meta(body, request.headers, secrets=config.secrets("META_APP_SECRET"))
    delivery = meta.parse_delivery(body)
    return json_response(
        meta.process_delivery(get_db(), delivery, inline_limit=config.inline_fetch_limit)
    )
