"""Configuration: one frozen object built from a mapping (the environment), loaded lazily.

Secrets have no defaults and never appear in ``repr``; a function asks for what it needs with
:meth:`Config.require`, which names every missing variable at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache

from lib.errors import ConfigError

_NUMBERS = {
    "http_timeout_seconds": float,
    "max_body_bytes": int,
    "sweep_batch_size": int,
    "sweep_time_budget_seconds": float,
    "inline_fetch_limit": int,
    "calendly_tolerance_seconds": float,
    "elevenlabs_tolerance_seconds": float,
    "place_call_timeout_seconds": float,
    "call_max_attempts": int,
    "call_person_cooldown_hours": int,
    "call_max_per_person_per_day": int,
    "call_sweep_batch_size": int,
    "call_wait_voicemail_minutes": int,
    "call_wait_no_answer_minutes": int,
    "call_wait_busy_minutes": int,
    "call_wait_failed_minutes": int,
    "call_reconcile_after_minutes": int,
    "call_reconcile_give_up_minutes": int,
    "call_reconcile_batch_size": int,
}


@dataclass(frozen=True)
class Config:
    supabase_url: str | None = None
    supabase_service_role_key: str | None = field(default=None, repr=False)
    meta_app_secret: str | None = field(default=None, repr=False)
    meta_verify_token: str | None = field(default=None, repr=False)
    meta_access_token: str | None = field(default=None, repr=False)
    meta_graph_url: str = "https://graph.facebook.com"
    meta_graph_version: str = "v25.0"
    internal_token: str | None = field(default=None, repr=False)
    calendly_signing_key: str | None = field(default=None, repr=False)
    calendly_api_token: str | None = field(default=None, repr=False)
    calendly_api_url: str = "https://api.calendly.com"
    # How far a Calendly-Webhook-Signature timestamp may be from now, either way (Calendly's own
    # sample uses 3 minutes).
    calendly_tolerance_seconds: float = 180.0
    elevenlabs_api_key: str | None = field(default=None, repr=False)
    elevenlabs_agent_id: str | None = None
    elevenlabs_phone_number_id: str | None = None
    elevenlabs_webhook_secret: str | None = field(default=None, repr=False)
    elevenlabs_api_url: str = "https://api.elevenlabs.io"
    # twilio (POST /v1/convai/twilio/outbound-call) or sip_trunk (/v1/convai/sip-trunk/…).
    elevenlabs_telephony: str = "twilio"
    # ElevenLabs' own SDK refuses post-call webhooks older than 30 minutes.
    elevenlabs_tolerance_seconds: float = 1800.0
    # Where meta_webhook asks for a lead's call at once (the sweep covers a miss), and how long
    # it waits for that answer.
    place_call_url: str | None = None
    place_call_timeout_seconds: float = 2.0
    # The call rules: attempts per lead, calling hours in the lead's time zone (taken from the
    # phone number, else CALL_DEFAULT_TIMEZONE), and the wait after each outcome.
    call_max_attempts: int = 3
    # A person (leads sharing a phone or an email) who answered a call is not called again for
    # this long, whichever lead a new form fill creates: they have just talked to the agent.
    call_person_cooldown_hours: int = 24
    # Calls that may have rung, to one person, in any rolling 24 hours (Florida's limit:
    # Fla. Stat. 501.616).
    call_max_per_person_per_day: int = 3
    call_hours_start: str = "09:00"
    call_hours_end: str = "20:00"
    call_default_timezone: str = "America/New_York"
    call_sweep_batch_size: int = 20
    call_wait_voicemail_minutes: int = 120
    call_wait_no_answer_minutes: int = 60
    call_wait_busy_minutes: int = 15
    call_wait_failed_minutes: int = 30
    # A placed call whose post-call webhook has not come this long after it started is read from
    # the conversation API by the sweep (calls last minutes; the webhook comes within a minute of
    # the end), at most CALL_RECONCILE_BATCH_SIZE a run; one still unfinished, or unknown to
    # ElevenLabs, this long after it started is recorded as unknown.
    call_reconcile_after_minutes: int = 15
    call_reconcile_give_up_minutes: int = 360
    call_reconcile_batch_size: int = 20
    # Extra words of voicemail greetings (comma-separated), beside the built-in Spanish and English
    # ones (place_call voicemail.py): a turn with them reads as a machine's unless it speaks to
    # the caller more.
    voicemail_phrases: str = ""
    default_phone_region: str = "US"
    http_timeout_seconds: float = 5.0
    # A batch of 1000 leadgen changes is about 250 kB; 1 MiB leaves room and stops abuse.
    max_body_bytes: int = 1_048_576
    sweep_batch_size: int = 50
    # A sweep works batch after batch until nothing is due or this is spent; it must stay under
    # the function's request timeout (60 s by default on Cloud Functions).
    sweep_time_budget_seconds: float = 45.0
    # Graph fetches made while Meta waits for the answer; the rest of a big batch is swept.
    inline_fetch_limit: int = 20

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Config:
        values: dict[str, object] = {}
        invalid = []
        for f in fields(cls):
            raw = (env.get(f.name.upper()) or "").strip()
            if not raw:
                continue
            convert = _NUMBERS.get(f.name)
            try:
                values[f.name] = convert(raw) if convert else raw
            except ValueError:
                invalid.append(f.name.upper())
        if invalid:
            raise ConfigError([], invalid=invalid)
        return cls(**values)  # type: ignore[arg-type]

    def require(self, *names: str) -> list[str]:
        """The values of ``names`` (variable names, e.g. ``META_APP_SECRET``), all set."""
        values = [getattr(self, name.lower()) for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise ConfigError(missing)
        return values

    def secrets(self, name: str) -> list[str]:
        """A secret that may hold several comma-separated values while it is being rotated."""
        (value,) = self.require(name)
        values = [part.strip() for part in value.split(",") if part.strip()]
        if not values:
            raise ConfigError([], invalid=[name])
        return values


@cache
def get_config() -> Config:
    """The process's configuration, read once from the environment."""
    return Config.from_mapping(os.environ)
