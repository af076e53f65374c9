"""meta_webhook's settings: every variable it reads (lib.settings says how they are read)."""

from __future__ import annotations

from typing import Annotated, Literal

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
    # Outcomes back to Meta (Conversions API for CRM, "Conversion Leads"): the CRM dataset's id
    # (Events Manager > the dataset > Settings). Empty: no stage is sent (they wait, and are
    # parked once older than Meta's 7 days).
    meta_dataset_id: Annotated[str, Field(pattern=r"^([0-9]{5,20})?$")] = ""
    # A token allowed to send events to the dataset: the system user's token (the one the Page
    # token came from, with ads_management, the dataset assigned to the system user). Empty:
    # META_ACCESS_TOKEN is tried.
    meta_conversions_token: Secret | Literal[""] = ""
    # custom_data.lead_event_source: the CRM's name, as Meta shows it.
    meta_crm_name: Annotated[str, Field(min_length=1, max_length=100)] = "Speed to lead"
    # Each stage's event_name, as named in Meta's CRM stage mapping.
    meta_stage_received: Annotated[str, Field(min_length=1, max_length=100)] = "Lead"
    meta_stage_called: Annotated[str, Field(min_length=1, max_length=100)] = "Contacted"
    meta_stage_booked: Annotated[str, Field(min_length=1, max_length=100)] = "Booked"
    meta_stage_attended: Annotated[str, Field(min_length=1, max_length=100)] = "Attended"
    meta_stage_no_show: Annotated[str, Field(min_length=1, max_length=100)] = "No show"
    # Calendly sends no "attended": a meeting ended this long ago, still booked and not marked a
    # no-show, counts as attended (a no-show mark may come late; Meta's 7 days bound it).
    meta_attended_grace_hours: Annotated[int, Field(ge=1, le=144)] = 24
    # Events Manager > Test events' code: every event goes to Test Events instead (checking).
    meta_test_event_code: Annotated[str, Field(max_length=64)] = ""


def settings() -> MetaWebhookSettings:
    """This process's settings, read once."""
    return get_settings(MetaWebhookSettings)
