"""Sample ids and builders of signed deliveries, shaped as the providers send them: the one place
the tests, `make send-test-event` and `make bench` take them from.

- Meta leadgen webhooks:
  https://developers.facebook.com/docs/marketing-api/guides/lead-ads/quickstart/webhooks-integration
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

from lib.signatures import META_HEADER, sign_meta

# The Page and form of Meta's sample delivery (tests/fixtures/meta/leadgen_webhook_fbsamples.json),
# which the Graph fake's default lead uses too.
PAGE_ID = "138124712925158"
FORM_ID = "172036835026334"

_sequence = itertools.count(int(time.time() * 1000) % 10**9 * 1000)


def new_leadgen_id() -> str:
    """A leadgen id used by nothing else in this process (Meta's are 15-16 digit numbers),
    seeded from the clock so that two runs against one database do not collide."""
    return str(1_000_000_000_000_000 + next(_sequence))


def random_leadgen_id() -> str:
    """A random 16-digit leadgen id, for a tool run by hand."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def leadgen_delivery(
    *leadgen_ids: str,
    page_id: str = PAGE_ID,
    form_id: str = FORM_ID,
    created_time: int | None = None,
    numeric: bool = False,
) -> bytes:
    """A delivery as Meta sends it (compact JSON): one ``page`` entry, one ``leadgen`` change
    per id, the form filled ``created_time`` (default: now, as for a lead Meta just sent).
    ``numeric`` sends the ids as JSON numbers, as Meta sometimes does."""
    if created_time is None:
        created_time = int(time.time())

    def cast(value: str) -> Any:
        return int(value) if numeric and value.isdigit() else value

    changes = [
        {
            "field": "leadgen",
            "value": {
                "leadgen_id": cast(lid),
                "page_id": cast(page_id),
                "form_id": cast(form_id),
                "created_time": created_time,
            },
        }
        for lid in leadgen_ids
    ]
    delivery = {
        "object": "page",
        "entry": [{"id": cast(page_id), "time": created_time + 1, "changes": changes}],
    }
    return json.dumps(delivery, separators=(",", ":")).encode()


def batch_delivery(
    first: str, second: str, third: str, fourth: str, *, pages: tuple[str, str] = ("1", "2")
) -> bytes:
    """The batch shape of Meta's docs: two entries (``pages``), several changes each, numeric
    ids in the first entry and strings in the second, an ``ad_id`` on the first lead only, no
    ``page_id`` on the later ones, and a non-leadgen field between them."""
    leadgen: dict[str, Any] = {"field": "leadgen"}
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": int(pages[0]),
                    "time": 2,
                    "changes": [
                        {
                            **leadgen,
                            "value": {
                                "leadgen_id": int(first),
                                "page_id": int(pages[0]),
                                "form_id": 5,
                                "ad_id": 7,
                                "adgroup_id": 7,
                                "created_time": int(time.time()),
                            },
                        },
                        {"field": "feed", "value": {"item": "status"}},
                        {**leadgen, "value": {"leadgen_id": int(second), "form_id": 5}},
                    ],
                },
                {
                    "id": pages[1],
                    "time": 3,
                    "changes": [
                        {**leadgen, "value": {"leadgen_id": third, "form_id": "6"}},
                        {**leadgen, "value": {"leadgen_id": fourth, "form_id": "6"}},
                    ],
                },
            ],
        }
    ).encode()


def meta_headers(body: bytes, *, secret: str) -> dict[str, str]:
    """The headers Meta sends with ``body``, signed with the app secret ``secret``."""
    return {"Content-Type": "application/json", META_HEADER: sign_meta(body, secret=secret)}
