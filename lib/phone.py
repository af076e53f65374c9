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


def time_zone(e164: str | None) -> str | None:
    """The IANA time zone of a number when its prefix has exactly one (``+1 212…`` →
    ``America/New_York``), else None (``+34 6…`` spans the Canaries and the peninsula)."""
    if not e164:
        return None
    import phonenumbers
    from phonenumbers import timezone  # ~10 ms: paid by the first lead with a phone, not import

    try:
        zones = timezone.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return zones[0] if len(zones) == 1 and zones[0] != timezone.UNKNOWN_TIMEZONE else None
