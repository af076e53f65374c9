"""meta_webhook's settings: every variable it reads (lib.settings says how they are read)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from lib.settings import Count, Phones, Private, Seconds, Secret, Url, get_settings


class MetaWebhookSettings(Private, Phones):
    # The Meta app's App Secret (several, comma-separated, while rotating): signs deliveries.
    meta_app_secret: Secret | None = None
    # The Verify Token typed in App Dashboard > Webhooks when subscribing the Page object.
    meta_verify_token: Secret | None = None
    # A long-lived Page access token with leads_retrieval.
    meta_access_token: Secret | None = None
    meta_graph_url: Url = "https://graph.facebook.com"
    meta_graph_version: Annotated[str, Field(pattern=r"^v[0-9]+\.[0-9]+$")] = "v25.0"
    # Where a new lead's call is asked for at once (the sweep covers a miss), and how long the
    # answer is waited for.
    place_call_url: Url | None = None
    place_call_timeout_seconds: Seconds = 2.0
    # Leads fetched per sweep batch, and Graph fetches made while Meta waits for the answer
    # (the rest of a big delivery is swept).
    sweep_batch_size: Count = 50
    inline_fetch_limit: Annotated[int, Field(ge=0)] = 20
    # integration_logs and webhook_events rows older than this are deleted by the sweep, a batch
    # at a time (the evidence rows of opt-outs, do-not-call and consent are kept); at least 7,
    # longer than any provider's redelivery window (webhook_events holds the idempotency keys).
    retention_days: Annotated[int, Field(ge=7)] = 90


def settings() -> MetaWebhookSettings:
    """This process's settings, read once."""
    return get_settings(MetaWebhookSettings)
