"""place_call's settings: every variable it reads (lib.settings says how they are read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from lib.settings import ClockTime, Count, Minutes, Private, Seconds, Secret, TimeZone, get_settings


def _choice(value: object) -> object:
    return value.strip().lower().replace("-", "_") if isinstance(value, str) else value


class PlaceCallSettings(Private):
    elevenlabs_api_key: Secret | None = None
    # The agent that calls the leads (agent_…) and the number it calls from (phnum_…).
    elevenlabs_agent_id: str | None = None
    elevenlabs_phone_number_id: str | None = None
    # The post-call webhook's HMAC secret (several, comma-separated, while one is rotated).
    elevenlabs_webhook_secret: Secret | None = None
    elevenlabs_api_url: str = "https://api.elevenlabs.io"
    # twilio (POST /v1/convai/twilio/outbound-call) or sip_trunk (/v1/convai/sip-trunk/…), in
    # any case, sip-trunk too.
    elevenlabs_telephony: Annotated[Literal["twilio", "sip_trunk"], BeforeValidator(_choice)] = (
        "twilio"
    )
    # ElevenLabs' own SDK refuses post-call webhooks older than 30 minutes.
    elevenlabs_tolerance_seconds: Seconds = 1800.0
    # The call rules (p_rules of the SQL functions): attempts per lead; calling hours in the
    # lead's time zones (from the phone number, else CALL_DEFAULT_TIMEZONE), a daytime window.
    call_max_attempts: Count = 3
    # A person (leads sharing a phone or an email) who answered a call is not called again for
    # this long, whichever lead a new form fill creates: they have just talked to the agent.
    call_person_cooldown_hours: Minutes = 24
    # Calls that may have rung, to one person, in any rolling 24 hours (Florida's limit:
    # Fla. Stat. 501.616).
    call_max_per_person_per_day: Count = 3
    # A lead older than this (from its creation at Meta or Calendly) is not called automatically
    # (status too_old): a lead recovered days late, or still queued after days of retries, is
    # better called by a person. 72 hours covers a weekend.
    call_max_lead_age_hours: Annotated[int, Field(ge=1, le=8760)] = 72
    call_hours_start: ClockTime = "09:00"
    call_hours_end: ClockTime = "20:00"
    # The calling rules by place (call_place_rules: the federal and state windows of +1 numbers,
    # Spain's weekdays, per-person caps such as Florida's), intersected with CALL_HOURS_*. false
    # applies CALL_HOURS_* alone: for tests and `make dev`, never for real calls (doctor warns).
    call_place_rules: bool = True
    # Days without calls: holiday calendars of call_holidays (US: federal, ES: national), each
    # for the numbers of its place, and dates (YYYY-MM-DD) for every number; comma-separated.
    call_holidays: Annotated[str, Field(pattern=r"^[A-Za-z0-9 ,\-]*$")] = "US,ES"
    call_default_timezone: TimeZone = "America/New_York"
    call_sweep_batch_size: Count = 20
    # Minutes before the next attempt after each outcome.
    call_wait_voicemail_minutes: Minutes = 120
    call_wait_no_answer_minutes: Minutes = 60
    call_wait_busy_minutes: Minutes = 15
    call_wait_failed_minutes: Minutes = 30
    # A placed call whose post-call webhook has not come this long after it started is read from
    # the conversation API by the sweep (calls last minutes; the webhook comes within a minute of
    # the end), at most CALL_RECONCILE_BATCH_SIZE a run; one still unfinished, or unknown to
    # ElevenLabs, this long after it started is recorded as unknown.
    call_reconcile_after_minutes: Count = 15
    call_reconcile_give_up_minutes: Count = 360
    call_reconcile_batch_size: Count = 20
    # Who the agent calls for, and what it must say first (the agent reads both as dynamic
    # variables, {{business_name}} and {{disclosure}}): that the caller is an AI assistant and
    # that the call may be recorded (FCC 24-17, EU AI Act art. 50, ElevenLabs' terms). {business}
    # in CALL_DISCLOSURE is CALL_BUSINESS_NAME. `make doctor` checks the agent says it.
    call_business_name: str = ""
    call_disclosure: str = (
        "soy una asistente de inteligencia artificial de {business} y esta llamada puede ser "
        "grabada."
    )
    # The agent's data collection item (a boolean) it fills when the callee asks not to be called
    # again, if the operator defines one: beside the words place_call finds itself.
    call_opt_out_field: str = ""
    # Consent to be called by an AI (FCC 24-17; LGTel art. 66): required (the default) calls no
    # lead without a checked consent checkbox of its form that the form did not pre-check (the
    # lead rests in no_consent, with a log row naming the form); recorded calls whatever the form
    # says and keeps the evidence, or its absence, on each call; off neither looks nor keeps.
    call_consent: Annotated[Literal["required", "recorded", "off"], BeforeValidator(_choice)] = (
        "required"
    )
    # The form checkbox keys (comma-separated) that mean consent to be called; empty: any
    # checkbox of the form's custom disclaimer.
    call_consent_checkboxes: str = ""
    # Extra words of voicemail greetings (comma-separated), beside the built-in Spanish and English
    # ones (place_call.voicemail): a turn with them reads as a machine's unless it speaks to the
    # caller more.
    voicemail_phrases: str = ""

    @property
    def disclosure(self) -> str:
        """CALL_DISCLOSURE with the business named."""
        business = self.call_business_name or "nuestra empresa"
        return self.call_disclosure.replace("{business}", business)

    def call_rules(self) -> dict[str, Any]:
        """The call rules' numbers: ``p_rules`` of the SQL functions, which require every key."""
        return {
            "max_attempts": self.call_max_attempts,
            "hours_start": self.call_hours_start,
            "hours_end": self.call_hours_end,
            "default_timezone": self.call_default_timezone,
            "person_cooldown_hours": self.call_person_cooldown_hours,
            "max_lead_age_hours": self.call_max_lead_age_hours,
            "max_per_person_per_day": self.call_max_per_person_per_day,
            "place_rules": self.call_place_rules,
            # Calendars are place codes (US, ES, US-LA): upper case, as call_holidays keeps them.
            "holidays": [
                item.strip().upper() for item in self.call_holidays.split(",") if item.strip()
            ],
            "consent": self.call_consent,
            "consent_checkboxes": [
                key.strip() for key in self.call_consent_checkboxes.split(",") if key.strip()
            ],
            "wait_minutes": {
                "voicemail": self.call_wait_voicemail_minutes,
                "no_answer": self.call_wait_no_answer_minutes,
                "busy": self.call_wait_busy_minutes,
                "failed": self.call_wait_failed_minutes,
            },
        }

    @model_validator(mode="after")
    def _daytime_window(self) -> Self:
        # A daytime window only: an overnight one (20:00-09:00) or an empty one would hold no
        # lawful hour, or every lead would be rescheduled for ever.
        if self.call_hours_start >= self.call_hours_end:
            raise PydanticCustomError(
                "calling_hours",
                "the calling hours must be a daytime window, start before end",
                {"names": ["CALL_HOURS_START", "CALL_HOURS_END"]},
            )
        return self


def settings() -> PlaceCallSettings:
    """This process's settings, read once."""
    return get_settings(PlaceCallSettings)
