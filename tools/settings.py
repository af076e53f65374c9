"""The variables the tools read beside the functions' own (lib.settings), and their union.

Each function declares what it reads (``<function>/settings.py``); the operator commands and
the deploy declare theirs here and in tools/deploy/settings.py. ``supabase/.env.example`` lists
exactly the union of these declarations (tests/test_settings.py).
"""

from __future__ import annotations

from functools import cache

from lib.settings import Count, Declared, Secret, Url
from tools.build.functions import function_names, settings_class
from tools.deploy.settings import DeployVariables


class Operator(Declared):
    """What `make doctor`, `make calendly-subscribe` and the other operator commands read."""

    # The Page whose leads arrive here (`make doctor` checks its leadgen subscription).
    meta_page_id: str | None = None
    # A Calendly personal access token, for `make calendly-subscribe` and `make doctor`.
    calendly_api_token: Secret | None = None
    calendly_api_url: Url = "https://api.calendly.com"
    # Written by `make calendly-subscribe URL=…`: the webhook's URL.
    calendly_webhook_url: Url | None = None
    # The number ELEVENLABS_PHONE_NUMBER_ID should be (`make doctor` warns when it is another).
    elevenlabs_phone_number: str | None = None
    # `make doctor` warns when fewer ElevenLabs credits than this are left.
    elevenlabs_min_credits: Count = 10_000


def declarations() -> list[type[Declared]]:
    """Every declaration: each function's settings, the operator commands', the deploy's."""
    return [*(settings_class(name) for name in function_names()), Operator, DeployVariables]


@cache
def everything() -> type[Declared]:
    """Every variable of supabase/.env as one class: the operator commands' view of it."""
    return type("Everything", tuple(declarations()), {})
