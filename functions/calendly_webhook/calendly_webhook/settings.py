"""calendly_webhook's settings: every variable it reads (lib.settings says how they are read)."""

from __future__ import annotations

from lib.settings import Phones, Seconds, Secret, get_settings


class CalendlyWebhookSettings(Phones):
    # The webhook subscription's signing key (several, comma-separated, newest first, while one
    # is rotated); written by `make calendly-subscribe`.
    calendly_signing_key: Secret | None = None
    # How far a Calendly-Webhook-Signature timestamp may be from now, either way (Calendly's own
    # sample uses 3 minutes).
    calendly_tolerance_seconds: Seconds = 180.0


def settings() -> CalendlyWebhookSettings:
    """This process's settings, read once."""
    return get_settings(CalendlyWebhookSettings)
