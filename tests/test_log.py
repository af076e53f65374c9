"""lib.log: one JSON object per line, contact details masked."""

from __future__ import annotations

import json

import pytest

from lib import log


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("zoe.lm@example.com", "z***@example.com"),
        ("Z@EXAMPLE.COM", "Z***@EXAMPLE.COM"),
        ("not-an-email", "***"),
        ("@example.com", "***"),
        ("", None),
        (None, None),
    ],
)
def test_mask_email_keeps_first_letter_and_domain(email: str | None, masked: str | None) -> None:
    assert log.mask_email(email) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+14155552671", "+14*******71"),
        ("+34612345678", "+34*******78"),
        ("555123", "******"),
        ("", None),
        (None, None),
    ],
)
def test_mask_phone_keeps_prefix_and_last_two_digits(phone: str | None, masked: str | None) -> None:
    assert log.mask_phone(phone) == masked


def test_emit_masks_contact_fields_and_drops_none(capsys: pytest.CaptureFixture[str]) -> None:
    log.info(
        "Call placed",
        function="place_call",
        email="zoe@example.com",
        phone="+14155552671",
        to_number="+34612345678",
        lead_id="abc",
        call_sid=None,
    )
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "severity": "INFO",
        "message": "Call placed",
        "function": "place_call",
        "email": "z***@example.com",
        "phone": "+14*******71",
        "to_number": "+34*******78",
        "lead_id": "abc",
    }
