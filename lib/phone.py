"""Phone numbers: whatever a lead typed, as E.164 (``+14155550123``) or None."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str | None, *, default_region: str) -> str | None:
    """E.164 for a valid number; numbers without a country code are read in ``default_region``."""
    if not raw or not raw.strip():
        return None
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
    from phonenumbers import timezone  # ~10 ms: paid by the first lead with a phone, not import

    try:
        zones = timezone.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return zones[0] if len(zones) == 1 and zones[0] != timezone.UNKNOWN_TIMEZONE else None
