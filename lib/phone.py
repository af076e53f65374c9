"""Phone numbers: whatever a lead typed, as E.164 (``+14155550123``) or None.

phonenumbers is imported by the first number read, not with this module (~40 ms of a cold
start): a Calendly booking without a phone never needs it."""

from __future__ import annotations


def to_e164(raw: str | None, *, default_region: str) -> str | None:
    """E.164 for a valid number; numbers without a country code are read in ``default_region``."""
    if not raw or not raw.strip():
        return None
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # The same rule as the leads_phone_e164 check: 7 to 15 digits after the "+".
    return e164 if 8 <= len(e164) <= 16 else None


def time_zones(e164: str | None) -> list[str]:
    """Every IANA time zone the number may be in, from its prefix (``+1 212…`` →
    ``["America/New_York"]``, ``+34 6…`` → ``["Atlantic/Canary", "Europe/Madrid"]``); empty when
    the prefix tells none."""
    if not e164:
        return []
    import phonenumbers
    from phonenumbers import timezone  # ~10 ms: paid by the first lead with a phone, not import

    try:
        zones = timezone.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return []
    return [zone for zone in zones if zone != timezone.UNKNOWN_TIMEZONE]
