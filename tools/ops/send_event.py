"""`make send-test-event`: post a correctly signed test delivery to a webhook, like Meta's Lead Ads
Testing Tool (https://developers.facebook.com/tools/lead-ads-testing).

One subcommand per provider; each builds a :class:`SignedRequest` and :func:`send` posts it::

    python -m tools.ops.send_event meta [--url URL] [--leadgen-id ID] [--page-id ID] [--form-id ID]
                                    [--secret S] [--numeric-ids] [--no-consent]
    python -m tools.ops.send_event calendly [--url URL] [--event created|canceled] [--email E]
                                        [--phone P] [--lead-id ID] [--invitee-uri URI]
                                        [--rescheduled [--other-invitee URI]] [--secret S]
    python -m tools.ops.send_event elevenlabs [--url URL]
                                          [--type transcription|initiation-failure|audio]
                                          [--conversation-id ID] [--lead-id ID] [--voicemail]
                                          [--failure-reason busy|no-answer|unknown] [--secret S]

It prints what it sent, the HTTP status and the response body, and exits 0 on a 2xx answer, 1 on
any other answer, 2 when it cannot send (no secret configured, URL unreachable). Settings come from
:func:`tools.stack.envfile.target` (ENV=local, the default, reads .local/dev.env;
ENV=production reads supabase/.env; the first line says which).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from tools.fakes import calendly_samples, elevenlabs_samples, graph_fake, samples
from tools.ops.logs import LogsError, first_line, lead_id_of, where
from tools.stack import envfile
from tools.stack.envfile import command_env

# The ids the Graph fake's default lead uses; any id works against the fake.
DEFAULT_PAGE_ID = samples.PAGE_ID
DEFAULT_FORM_ID = samples.FORM_ID
TIMEOUT_SECONDS = 30.0  # meta_webhook fetches the lead from the Graph API before answering


class SendError(Exception):
    """The event could not be sent (exit 2); the message says why and what to set."""


@dataclass(frozen=True)
class SignedRequest:
    """A delivery ready to post: the exact bytes, the headers that sign them, and a summary."""

    url: str
    body: bytes
    headers: dict[str, str]
    summary: str
    leadgen_id: str | None = None  # a Meta delivery's lead, looked up once it is answered


T = TypeVar("T")
Builder = Callable[[argparse.Namespace, Mapping[str, str]], SignedRequest]


def functions_url(env: Mapping[str, str], name: str) -> str:
    """Where `make dev` serves function ``name`` (``PORT`` overrides 8080)."""
    return f"http://127.0.0.1:{env.get('PORT') or '8080'}/functions/v1/{name}"


def first_secret(env: Mapping[str, str], name: str, where: str) -> str:
    """The first value of the secret ``name`` (several are comma-separated while one is rotated);
    :class:`SendError` saying ``where`` it comes from when it is not set."""
    parts = [part.strip() for part in (env.get(name) or "").split(",")]
    secret = next((part for part in parts if part), None)
    if secret is None:
        raise SendError(f"{name} is not set: {where} or pass --secret")
    return secret


# --- meta ------------------------------------------------------------------------------------


def build_meta(args: argparse.Namespace, env: Mapping[str, str]) -> SignedRequest:
    """The signed Meta delivery the ``meta`` subcommand's arguments describe."""
    secret = args.secret or first_secret(
        env,
        "META_APP_SECRET",
        f"set it ({envfile.WHERE_SET})",
    )
    leadgen_id = args.leadgen_id or samples.random_leadgen_id()
    page_id = args.page_id or env.get("META_PAGE_ID") or DEFAULT_PAGE_ID
    if args.no_consent:
        unconsented(env, leadgen_id)
    if args.test_event_code:
        _with_database(
            env,
            lambda conn: conn.execute(
                "insert into public.meta_test_leads (leadgen_id, test_event_code) values (%s, %s) "
                "on conflict (leadgen_id) do update set test_event_code = excluded.test_event_code",
                (leadgen_id, args.test_event_code),
            ),
        )
    body = samples.leadgen_delivery(
        leadgen_id,
        page_id=page_id,
        form_id=args.form_id,
        created_time=int(time.time()),
        numeric=args.numeric_ids,
    )
    return SignedRequest(
        url=args.url or functions_url(env, "meta_webhook"),
        body=body,
        headers=samples.meta_headers(body, secret=secret),
        summary=f"meta leadgen_id={leadgen_id} page_id={page_id} form_id={args.form_id}"
        + (" (consent box left unchecked)" if args.no_consent else "")
        + (
            f" (its stages go to Meta's Test events, code {args.test_event_code})"
            if args.test_event_code
            else ""
        ),
        leadgen_id=leadgen_id,
    )


def unconsented(env: Mapping[str, str], leadgen_id: str) -> None:
    """Tell `make dev`'s Graph fake to answer ``leadgen_id`` with the consent box unchecked."""
    graph = (env.get("META_GRAPH_URL") or "").rstrip("/")
    if urlsplit(graph).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SendError(
            "--no-consent needs `make dev`'s Graph fake (META_GRAPH_URL is "
            f"{graph or 'unset'}): a real lead's consent is what the person ticked"
        )
    lead = graph_fake.default_lead(leadgen_id)
    lead["custom_disclaimer_responses"] = [
        {"checkbox_key": graph_fake.CONSENT_KEY, "is_checked": "0"}
    ]
    try:
        httpx.put(f"{graph}/_fake/leads/{leadgen_id}", json={"lead": lead}, timeout=5.0)
    except httpx.HTTPError as err:
        raise SendError(
            f"the Graph fake at {graph} did not answer ({err}); is `make dev` running?"
        ) from err


def add_meta(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "meta",
        help="a Meta Lead Ads leadgen delivery, signed with X-Hub-Signature-256",
        description="Post a leadgen delivery signed with META_APP_SECRET.",
    )
    parser.add_argument(
        "--url", help="default: http://127.0.0.1:${PORT:-8080}/functions/v1/meta_webhook"
    )
    parser.add_argument("--leadgen-id", help="default: a fresh random 16-digit id")
    parser.add_argument("--page-id", help=f"default: META_PAGE_ID, else {DEFAULT_PAGE_ID}")
    parser.add_argument("--form-id", default=DEFAULT_FORM_ID, help="default: %(default)s")
    parser.add_argument("--secret", help="the app secret to sign with; default: META_APP_SECRET")
    parser.add_argument(
        "--numeric-ids",
        action="store_true",
        help="send the ids as JSON numbers, as Meta sometimes does",
    )
    parser.add_argument(
        "--no-consent",
        action="store_true",
        help="the lead leaves the form's consent box unchecked (`make dev`'s Graph fake only): "
        "under CALL_CONSENT=required it is stored and not called",
    )
    parser.add_argument(
        "--test-event-code",
        help="Events Manager > Test events' code: this lead's stages (received, called, booked …) "
        "go there instead of live (marked in the target's database before the delivery)",
    )
    parser.set_defaults(build=build_meta)


# --- calendly --------------------------------------------------------------------------------


def build_calendly(args: argparse.Namespace, env: Mapping[str, str]) -> SignedRequest:
    """The signed Calendly delivery the ``calendly`` subcommand's arguments describe."""
    secret = args.secret or first_secret(
        env,
        "CALENDLY_SIGNING_KEY",
        "`make calendly-subscribe URL=…` stores it in supabase/.env (`make dev` generates a "
        "local one),",
    )
    lead_id = _lead_id(env, args.lead_id) if args.lead_id else None
    invitee_uri = args.invitee_uri
    if args.event == "canceled" and not invitee_uri:
        invitee_uri = _last_booking(env)
    event = calendly_samples.calendly_invitee_event(
        f"invitee.{args.event}",
        uri=invitee_uri,
        email=args.email,
        phone=args.phone,
        lead_id=lead_id,
        rescheduled=args.rescheduled,
        other_invitee=args.other_invitee,
    )
    body = calendly_samples.encode(event)
    payload = event["payload"]
    other = payload["new_invitee"] or payload["old_invitee"]
    return SignedRequest(
        url=args.url or functions_url(env, "calendly_webhook"),
        body=body,
        headers=calendly_samples.calendly_headers(body, secret=secret, timestamp=int(time.time())),
        summary=f"calendly invitee.{args.event} invitee={payload['uri']}"
        + (f" lead_id={lead_id}" if lead_id else "")
        + (f" rescheduled {'to' if args.event == 'canceled' else 'from'} {other}" if other else ""),
    )


def _with_database(env: Mapping[str, str], read: Callable[[Any], T]) -> T:
    """``read(conn)`` on the target's database (DATABASE_URL), or SendError saying why not."""
    database_url = (env.get("DATABASE_URL") or "").strip()
    if not database_url:
        raise SendError(envfile.NO_DATABASE)
    try:
        with psycopg.connect(database_url, connect_timeout=5, row_factory=dict_row) as conn:
            return read(conn)
    except LogsError as err:
        raise SendError(str(err)) from None
    except psycopg.Error as exc:
        raise SendError(
            f"cannot read the database at {where(database_url)}: {first_line(exc)}"
        ) from None


def _query(env: Mapping[str, str], sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return _with_database(env, lambda conn: conn.execute(sql, params).fetchall())


def _lead_id(env: Mapping[str, str], given: str) -> str:
    """``given`` when it is a whole lead id; the one lead whose id starts with it (8 characters
    at least, as `make logs` shows them: the same lookup, logs.lead_id_of) otherwise."""
    try:
        return str(uuid.UUID(given))
    except ValueError:
        return str(_with_database(env, lambda conn: lead_id_of(conn, given)))


def _last_booking(env: Mapping[str, str]) -> str:
    """The invitee URI of the latest active booking: what `--event canceled` cancels."""
    rows = _query(
        env,
        "select calendly_invitee_uri from public.appointments where status = 'active' "
        "order by created_at desc limit 1",
        {},
    )
    if not rows:
        raise SendError("no active booking to cancel (give --invitee-uri)")
    return str(rows[0]["calendly_invitee_uri"])


def add_calendly(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "calendly",
        help="a Calendly invitee.created or invitee.canceled, signed with "
        "Calendly-Webhook-Signature",
        description="Post an invitee event signed with the first CALENDLY_SIGNING_KEY.",
    )
    parser.add_argument(
        "--url", help="default: http://127.0.0.1:${PORT:-8080}/functions/v1/calendly_webhook"
    )
    parser.add_argument("--event", choices=("created", "canceled"), default="created")
    parser.add_argument("--email", help="the invitee's email; default: a fresh test address")
    parser.add_argument("--phone", help="text_reminder_number, e.g. '+1 404-555-1234'")
    parser.add_argument(
        "--lead-id",
        help="a lead's id, or its first 8 characters as `make logs` shows them, sent as "
        "tracking.utm_content",
    )
    parser.add_argument(
        "--invitee-uri",
        help="the invitee (the booking); default: created, a fresh one (printed); canceled, the "
        "latest active booking",
    )
    parser.add_argument(
        "--rescheduled",
        action="store_true",
        help="canceled: a reschedule (rescheduled: true, new_invitee); created: the new booking "
        "of a reschedule (old_invitee)",
    )
    parser.add_argument(
        "--other-invitee",
        help="with --rescheduled: the new_invitee (canceled) or old_invitee (created)",
    )
    parser.add_argument("--secret", help="the key to sign with; default: CALENDLY_SIGNING_KEY")
    parser.set_defaults(build=build_calendly)


# --- elevenlabs ------------------------------------------------------------------------------

ELEVENLABS_TYPES = ("transcription", "initiation-failure", "audio")


def build_elevenlabs(args: argparse.Namespace, env: Mapping[str, str]) -> SignedRequest:
    """The signed post-call webhook the ``elevenlabs`` subcommand's arguments describe."""
    secret = args.secret or first_secret(
        env,
        "ELEVENLABS_WEBHOOK_SECRET",
        f"set it to the post-call webhook's secret ({envfile.WHERE_SET}),",
    )
    conversation_id = args.conversation_id or elevenlabs_samples.new_conversation_id()
    agent_id = env.get("ELEVENLABS_AGENT_ID") or elevenlabs_samples.AGENT_ID
    lead_id = args.lead_id
    if args.type == "transcription":
        lead_id = lead_id or elevenlabs_samples.new_lead_id()
        event = elevenlabs_samples.post_call_transcription(
            conversation_id, lead_id=lead_id, agent_id=agent_id, voicemail_tool=args.voicemail
        )
    elif args.type == "initiation-failure":
        sip = (env.get("ELEVENLABS_TELEPHONY") or "").strip().lower() in ("sip_trunk", "sip-trunk")
        event = elevenlabs_samples.call_initiation_failure(
            conversation_id,
            failure_reason=args.failure_reason,
            lead_id=lead_id,
            agent_id=agent_id,
            provider="sip" if sip else "twilio",
        )
    else:
        event = elevenlabs_samples.post_call_audio(conversation_id, agent_id=agent_id)
    body = elevenlabs_samples.encode(event)
    details = {
        "transcription": " voicemail_detection" if args.voicemail else " answered",
        "initiation-failure": f" {args.failure_reason}",
        "audio": "",
    }[args.type]
    return SignedRequest(
        url=args.url or functions_url(env, "place_call") + "/webhook",
        body=body,
        headers=elevenlabs_samples.signed_headers(body, secret),
        summary=f"elevenlabs {event['type']}{details} conversation_id={conversation_id}"
        + (f" lead_id={lead_id}" if lead_id else ""),
    )


def add_elevenlabs(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "elevenlabs",
        help="an ElevenLabs post-call webhook, signed with ElevenLabs-Signature",
        description="Post a post-call webhook signed with the first ELEVENLABS_WEBHOOK_SECRET.",
    )
    parser.add_argument(
        "--url", help="default: http://127.0.0.1:${PORT:-8080}/functions/v1/place_call/webhook"
    )
    parser.add_argument("--type", choices=ELEVENLABS_TYPES, default="transcription")
    parser.add_argument(
        "--conversation-id", help="the call's conversation_id; default: a fresh one (printed)"
    )
    parser.add_argument(
        "--lead-id",
        help="sent as dynamic_variables.lead_id; default: a fresh uuid for a transcription, "
        "none for an initiation failure (ElevenLabs' documented shape: matched by "
        "conversation_id alone)",
    )
    parser.add_argument(
        "--voicemail",
        action="store_true",
        help="transcription: a voicemail greeting and the voicemail_detection tool call",
    )
    parser.add_argument(
        "--failure-reason",
        choices=elevenlabs_samples.FAILURE_REASONS,
        default="busy",
        help="initiation-failure: why the call did not start (default: %(default)s)",
    )
    parser.add_argument(
        "--secret", help="the secret to sign with; default: ELEVENLABS_WEBHOOK_SECRET"
    )
    parser.set_defaults(build=build_elevenlabs)


# Each provider adds its subcommand; the subcommand sets ``build`` (a Builder).
PROVIDERS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_meta,
    add_calendly,
    add_elevenlabs,
)


# --- sending ---------------------------------------------------------------------------------


def send(request: SignedRequest, *, http_client: httpx.Client | None = None) -> httpx.Response:
    """POST the exact bytes; :class:`SendError` when the URL cannot be reached."""
    client = http_client or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        return client.post(request.url, content=request.body, headers=request.headers)
    except httpx.TimeoutException:
        raise SendError(f"{request.url} did not answer within {TIMEOUT_SECONDS:.0f} s") from None
    except httpx.TransportError as exc:
        raise SendError(
            f"{request.url} is unreachable ({type(exc).__name__}: {exc}); is "
            "`make dev` running, or is --url right?"
        ) from None
    finally:
        if http_client is None:
            client.close()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m tools.ops.send_event",
        description="Post a correctly signed test delivery, like Meta's Lead Ads Testing Tool.",
    )
    subcommands = root.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    for add in PROVIDERS:
        add(subcommands)
    return root


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    build: Builder = args.build
    try:
        if env is None:
            env = command_env("send_event")
            if env is None:
                return 2
            if env.get("ENV", "local") == "production" and not args.url:
                raise SendError("ENV=production needs URL=<the deployed function's URL>")
        request = build(args, env)
        print(f"POST {request.url}  ({request.summary})", flush=True)
        response = send(request)
    except SendError as err:
        print(f"send_event: {err}", file=sys.stderr)
        return 2
    print(f"HTTP {response.status_code} {response.reason_phrase}")
    print(response.text)
    if response.is_success and request.leadgen_id:
        # The lead it created, as `make logs` names it (nothing more when the database is out of
        # reach: the delivery itself was answered).
        with contextlib.suppress(SendError):
            rows = _query(
                env,
                "select id::text from public.leads where meta_leadgen_id = %(l)s",
                {"l": request.leadgen_id},
            )
            for row in rows:
                print(f"lead {row['id']}: `make logs LEAD={row['id'][:8]}` shows its trail")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
