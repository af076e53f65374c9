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
