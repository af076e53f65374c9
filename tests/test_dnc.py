"""The internal do-not-call list (`make dnc`, public.do_not_contact): every claim checks it, an
opt-out said on a call adds the person to it, nothing on it is ever deleted, and a removal lets
only future leads be called. Over the real database and place_call over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient
from tools.ops import dnc, evidence
from tools.stack import local as local_stack

from .conftest import (
    Functions,
    lead,
    place,
    placed_conversation,
    queued_lead,
    unique_phone,
    webhook,
)

Conn = psycopg.Connection[Any]


def unique_email() -> str:
    return f"dnc.{uuid.uuid4().hex[:12]}@example.com"


def make_dnc(stack: local_stack.Stack, *args: str) -> int:
    return dnc.main(list(args), env={"DATABASE_URL": stack.env["DATABASE_URL"]})


def logged(db: Conn, event: str, needle: str) -> list[str]:
    return [
        str(r[0])
        for r in db.execute(
            "select message from integration_logs where event = %s and message like %s order by id",
            (event, f"%{needle}%"),
        )
    ]


@pytest.mark.parametrize("kind", ["phone", "email"])
def test_a_listed_phone_or_email_is_never_called(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    stack: local_stack.Stack,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    phone, email = unique_phone(), unique_email()
    # Typed as a person would: national format for the phone, capitals in the email.
    typed = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}" if kind == "phone" else email.upper()
    assert make_dnc(stack, "--add", typed, "--reason", "asked by letter") == 0
    assert "no lead with it is called" in capsys.readouterr().out
    lead_id = queued_lead(db, phone=phone, email=email)

    answer = place(functions, lead_id).json()

    assert answer["decision"] == "do_not_call"
    assert lead(db, lead_id)["status"] == "do_not_call"
    assert elevenlabs.count(phone) == 0
    value = phone if kind == "phone" else email
    [message] = logged(db, "lead.do_not_call", value)
    assert "on the do-not-call list since" in message and "asked by letter" in message
    # Adding it again changes nothing.
    assert make_dnc(stack, "--add", value) == 0
    assert "was already on the list" in capsys.readouterr().out


def test_a_removal_needs_its_reason_and_lets_only_future_leads_be_called(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    stack: local_stack.Stack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    phone = unique_phone()
    make_dnc(stack, "--add", phone)
    marked = queued_lead(db, phone=phone)
    assert place(functions, marked).json()["decision"] == "do_not_call"

    assert make_dnc(stack, "--remove", phone) == 2
    assert "needs its reason" in capsys.readouterr().err
    assert make_dnc(stack, "--remove", phone, "--reason", "wrote to ask for a call") == 0
    assert "future leads with it may be called" in capsys.readouterr().out

    assert lead(db, marked)["status"] == "do_not_call"  # final
    later = queued_lead(db, phone=phone)
    assert place(functions, later).json()["decision"] == "placed"
    assert elevenlabs.count(phone) == 1
    [message] = logged(db, "dnc.removed", phone)
    assert "wrote to ask for a call" in message and "1 lead(s) already do-not-call" in message
    # The entry is kept, stamped: the list shows it with --all only.
    assert make_dnc(stack) == 0
    assert phone not in capsys.readouterr().out
    assert make_dnc(stack, "--all") == 0
    assert "removed" in capsys.readouterr().out
    assert make_dnc(stack, "--remove", phone, "--reason", "again") == 0
    assert "is not on the list" in capsys.readouterr().out


def test_an_opt_out_on_a_call_lists_the_person_s_phones_and_emails(
    functions: Functions, db: Conn, stack: local_stack.Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    phone, email, other_phone = unique_phone(), unique_email(), unique_phone()
    first = queued_lead(db, phone=phone, email=email)
    queued_lead(db, phone=other_phone, email=email, next_call_at="public.clock_now()")
    conversation = placed_conversation(functions, db, first)
    said = samples.opt_out_transcript("No me llames más, por favor.")
    webhook(
        functions, samples.post_call_transcription(conversation, lead_id=first, transcript=said)
    )

    listed = db.execute(
        "select kind, value, source from do_not_contact where removed_at is null "
        "and value = any(%s) order by kind, value",
        ([phone, email, other_phone],),
    ).fetchall()
    assert listed == sorted(
        [("email", email, "call"), ("phone", phone, "call"), ("phone", other_phone, "call")]
    )
    # A form filled later with only the other phone: the same person, not called.
    later = queued_lead(db, phone=other_phone, email=None)
    assert place(functions, later).json()["decision"] == "do_not_call"
    # make evidence shows the list entries, with the words.
    assert evidence.main([first], env={"DATABASE_URL": stack.env["DATABASE_URL"]}) == 0
    text = capsys.readouterr().out
    assert f"list: phone {phone} since" in text and "No me llames más" in text


def test_entries_are_never_deleted_nor_rewritten(stack: local_stack.Stack, db: Conn) -> None:
    phone = unique_phone()
    make_dnc(stack, "--add", phone, "--reason", "complaint")
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        for sql in (
            "delete from do_not_contact where value = %s",
            "update do_not_contact set reason = 'edited' where value = %s",
            "update do_not_contact set value = '+12125550100' where value = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql, (phone,))
        conn.execute("select dnc_remove('phone', %s, 'test')", (phone,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a removal is stamped once
            conn.execute(
                "update do_not_contact set removed_reason = 'other' where value = %s", (phone,)
            )
    assert db.execute(
        "select reason, removed_reason from do_not_contact where value = %s", (phone,)
    ).fetchall() == [("complaint", "test")]


@pytest.mark.parametrize("value", ["12", "not an email@", "@example.com", "x@y"])
def test_make_dnc_refuses_what_is_neither_a_phone_nor_an_email(
    stack: local_stack.Stack, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert make_dnc(stack, "--add", value) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dnc: ") and ("is neither" in line or "is not an email" in line)


def test_make_dnc_without_a_database_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert dnc.main([], env={"DATABASE_URL": ""}) == 2
    assert "no database to read" in capsys.readouterr().err


def test_a_lead_marked_do_not_call_by_hand_lists_its_phone_and_email(
    functions: Functions, db: Conn, stack: local_stack.Stack
) -> None:
    phone, email = unique_phone(), unique_email()
    queued_lead(db, phone=phone, email=email, status="do_not_call", next_call_at=None)
    sources = db.execute(
        "select kind, source from do_not_contact where value = any(%s) and removed_at is null "
        "order by kind",
        ([phone, email],),
    ).fetchall()
    assert sources == [("email", "lead"), ("phone", "lead")]
    assert place(functions, queued_lead(db, email=email)).json()["decision"] == "do_not_call"
    # Both removed: a later lead of theirs is called.
    for value in (phone, email):
        assert make_dnc(stack, "--remove", value, "--reason", "marked by mistake") == 0
    assert place(functions, queued_lead(db, phone=phone)).json()["decision"] == "placed"


def test_a_listed_key_stops_every_lead_of_the_person_even_through_another_key(
    functions: Functions, db: Conn, stack: local_stack.Stack
) -> None:
    # The person: L2 shares the phone with the listed key, L3 shares only L2's email.
    phone, email = unique_phone(), unique_email()
    make_dnc(stack, "--add", phone, "--reason", "complaint")
    second = queued_lead(db, phone=phone, email=email)
    third = queued_lead(db, phone=unique_phone(), email=email)
    # L3 claimed first: its own keys are not listed, but its person's phone is.
    assert place(functions, third).json()["decision"] == "do_not_call"
    assert place(functions, second).json()["decision"] == "do_not_call"


def test_rewriting_a_do_not_call_status_never_lists_a_removed_key_again(
    db: Conn, stack: local_stack.Stack
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone, status="do_not_call", next_call_at=None)
    assert make_dnc(stack, "--remove", phone, "--reason", "wrote to ask for calls") == 0
    db.execute("update leads set status = status where id = %s", (lead_id,))  # as meta_complete
    active = db.execute(
        "select count(*) from do_not_contact where value = %s and removed_at is null", (phone,)
    ).fetchone()
    assert active == (0,)
