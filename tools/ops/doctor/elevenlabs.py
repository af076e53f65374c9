"""ElevenLabs' checks, when ELEVENLABS_API_KEY is set: the key, the credits, the agent (voicemail
detection), the phone number, the webhook secret, and whether post-call webhooks arrive."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lib.errors import AppError, ConfigError, FailureClass, ProviderFailure
from place_call.elevenlabs_api import ElevenLabsClient
from tools.ops.doctor.core import FAIL, OK, SKIP, WARN, Check, Context, Result, skipped
from tools.settings import Operator

_ELEVENLABS_UNSET = "ELEVENLABS_API_KEY is not set (ElevenLabs not connected)"
# ELEVENLABS_MIN_CREDITS: fewer credits left than this is a warning.
DEFAULT_MIN_CREDITS: int = Operator.model_fields["elevenlabs_min_credits"].default
DEFAULT_AGENT_NUMBER = "+17863212663"  # ELEVENLABS_PHONE_NUMBER: the number leads see calling
_AGENT_TOOLS = "ElevenLabs > Agents > the agent > Tools > System tools"
WEBHOOK_SETUP = (
    "a workspace admin creates a webhook (HMAC) to <functions base>/place_call/webhook in "
    "ElevenLabs > workspace settings > Webhooks, then selects it in Agents > Settings > "
    "Post-call webhook with the transcript and call initiation failure events; its secret is "
    "ELEVENLABS_WEBHOOK_SECRET"
)
WEBHOOK_PATH = "/place_call/webhook"
FAILURE_WINDOW_SECONDS = 86_400


def elevenlabs_client(ctx: Context, what: str) -> ElevenLabsClient | Result:
    """The client for ELEVENLABS_API_KEY, or the line to print instead (skip when unset)."""
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    config = ctx.config
    try:
        return ElevenLabsClient(
            base_url=config.elevenlabs_api_url,
            api_key=ctx.value("ELEVENLABS_API_KEY"),
            timeout=config.http_timeout_seconds,
            telephony=config.elevenlabs_telephony,
            http_client=ctx.http,
        )
    except ConfigError:
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_TELEPHONY is {config.elevenlabs_telephony!r}, not twilio or "
            "sip_trunk (the provider of the number in ElevenLabs > Phone Numbers)",
        )


def _elevenlabs_read(
    ctx: Context,
    what: str,
    read: Callable[[ElevenLabsClient], dict[str, Any]],
    *,
    once: str | None = None,
) -> dict[str, Any] | Result:
    """``read(client)``'s answer, or the line to print: skip when the key is unset or refused
    (the key check says so), FAIL with the failure's message otherwise. With ``once``, the
    answer (or failure) is kept under that name for the other checks that read it."""
    if once is None or once not in ctx._elevenlabs:
        client = elevenlabs_client(ctx, what)
        if isinstance(client, Result):
            return client
        try:
            answer: dict[str, Any] | ProviderFailure = read(client)
        except ProviderFailure as err:
            answer = err
        if once is None:
            return _answer_or_line(answer, what)
        ctx._elevenlabs[once] = answer
    return _answer_or_line(ctx._elevenlabs[once], what)


def _answer_or_line(answer: dict[str, Any] | ProviderFailure, what: str) -> dict[str, Any] | Result:
    if not isinstance(answer, ProviderFailure):
        return answer
    if answer.failure_class == FailureClass.AUTH:
        return Result(SKIP, f"{what}: not checked, the ElevenLabs API key does not work")
    return Result(FAIL, f"{what}: {answer.message}")


def _agent(ctx: Context, what: str) -> dict[str, Any] | Result:
    """The agent of ELEVENLABS_AGENT_ID, read once for every check that looks at it."""
    agent_id = ctx.value("ELEVENLABS_AGENT_ID")
    return _elevenlabs_read(ctx, what, lambda client: client.agent(agent_id), once="agent")


def check_elevenlabs_key(ctx: Context) -> Result:
    """ELEVENLABS_API_KEY works: ``GET /v1/user/subscription`` answers."""
    what = "ElevenLabs API key"
    client = elevenlabs_client(ctx, what)
    if isinstance(client, Result):
        return client
    try:
        plan = client.subscription()
    except ProviderFailure as err:
        if err.failure_class == FailureClass.PERMISSION:
            return Result(
                WARN,
                f"{what}: accepted, but it may not read the subscription, so credits cannot be "
                f"checked ({err.details.get('elevenlabs_message') or err.message}); give the key "
                "User: Read in ElevenLabs > Developers > API Keys",
            )
        return Result(FAIL, f"{what}: {err.message}")
    return Result(
        OK, f"{what}: works (plan {plan.get('tier', '?')}, status {plan.get('status', '?')})"
    )


def _min_credits(ctx: Context) -> int | None:
    raw = ctx.value("ELEVENLABS_MIN_CREDITS")
    if not raw:
        return DEFAULT_MIN_CREDITS
    try:
        return int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        return None


def check_elevenlabs_credits(ctx: Context) -> Result:
    """Credits left (``character_limit - character_count``): FAIL at none, warn under
    ELEVENLABS_MIN_CREDITS (default 10,000)."""
    what = "ElevenLabs credits"
    client = elevenlabs_client(ctx, what)
    if isinstance(client, Result):
        return client
    try:
        plan = client.subscription()
    except ProviderFailure:
        return Result(SKIP, f"{what}: not checked, the subscription could not be read (above)")
    used, limit = plan.get("character_count"), plan.get("character_limit")
    if not (isinstance(used, int) and isinstance(limit, int)):
        return Result(
            WARN,
            f"{what}: the subscription has no character_count and character_limit; check "
            "the balance in ElevenLabs > Subscription",
        )
    left = limit - used
    reset = plan.get("next_character_count_reset_unix")
    resets = (
        f"; the plan renews on {datetime.fromtimestamp(reset, UTC):%Y-%m-%d}"
        if isinstance(reset, int) and reset > 0
        else ""
    )
    counts = f"{max(left, 0):,} left of {limit:,}{resets}"
    # Usage-based billing: a workspace that may go past its plan's credits goes on calling
    # (can_extend_character_limit with max_credit_limit_extension, an int or "unlimited").
    extension = plan.get("max_credit_limit_extension")
    if plan.get("can_extend_character_limit") is True:
        if extension == "unlimited":
            return Result(OK, f"{what}: {counts}; usage-based billing goes on past the plan")
        if isinstance(extension, int) and not isinstance(extension, bool) and extension > 0:
            left += extension
            counts += f", and {extension:,} more of usage-based billing"
    if left <= 0:
        return Result(
            FAIL,
            f"{what}: none left ({counts}): every call fails until you top up in "
            "ElevenLabs > Subscription (or raise the plan)",
        )
    minimum = _min_credits(ctx)
    if minimum is None:
        return Result(
            WARN,
            f"{what}: {counts}; ELEVENLABS_MIN_CREDITS is not a whole number, so the balance is "
            "not compared with it",
        )
    if left < minimum:
        return Result(
            WARN,
            f"{what}: {counts}, under ELEVENLABS_MIN_CREDITS ({minimum:,}); top up in "
            "ElevenLabs > Subscription before calls start failing",
        )
    return Result(OK, f"{what}: {counts}")


def has_voicemail_detection(agent: dict[str, Any]) -> bool:
    """The agent has the voicemail_detection system tool: in ``prompt.built_in_tools`` or as a
    ``{type: system, name: voicemail_detection}`` entry of ``prompt.tools``."""
    conversation = agent.get("conversation_config")
    settings = conversation.get("agent") if isinstance(conversation, dict) else None
    prompt = settings.get("prompt") if isinstance(settings, dict) else None
    if not isinstance(prompt, dict):
        return False
    built_in = prompt.get("built_in_tools")
    if isinstance(built_in, dict) and isinstance(built_in.get("voicemail_detection"), dict):
        return True
    tools = prompt.get("tools")
    return any(
        isinstance(tool, dict)
        and tool.get("type") == "system"
        and "voicemail_detection"
        in (tool.get("name"), (tool.get("params") or {}).get("system_tool_type"))
        for tool in (tools if isinstance(tools, list) else [])
    )


def check_elevenlabs_agent(ctx: Context) -> Result:
    """ELEVENLABS_AGENT_ID is an agent of the account, with voicemail_detection enabled."""
    what = "ElevenLabs agent"
    if not ctx.missing("ELEVENLABS_API_KEY") and ctx.missing("ELEVENLABS_AGENT_ID"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_AGENT_ID is not set, so no call can be placed; copy the "
            "agent's id (agent_…) from ElevenLabs > Agents",
        )
    agent_id = ctx.value("ELEVENLABS_AGENT_ID")
    agent = _agent(ctx, what)
    if isinstance(agent, Result):
        return agent
    name = f"{agent.get('name') or '?'} ({agent_id})"
    if not has_voicemail_detection(agent):
        return Result(
            FAIL,
            f"{what}: {name} does not have voicemail_detection, so a call that reaches a "
            "voicemail talks to the greeting and counts as answered; enable Voicemail "
            f"detection in {_AGENT_TOOLS}",
        )
    return Result(OK, f"{what}: {name} exists, with voicemail_detection")


# Words that say, in the agent's language, that the caller is an AI and that the call may be
# recorded (compared without accents or case, as whole words).
_SAYS_AI = {
    "es": ("inteligencia artificial", "asistente virtual", "asistente de ia", "ia"),
    "en": ("artificial intelligence", "virtual assistant", "ai assistant", "ai", "a i"),
}
_SAYS_RECORDED = {
    "es": ("grabada", "grabado", "grabando", "grabacion", "grabar"),
    "en": ("recorded", "recording"),
}


def _words(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return " " + " ".join(re.findall(r"[a-z0-9]+", plain)) + " "


def says_disclosure(text: str, language: str) -> tuple[bool, bool]:
    """Whether ``text`` says, in ``language``, that the caller is an AI, and that the call may
    be recorded."""
    words = _words(text)
    return (
        any(f" {phrase} " in words for phrase in _SAYS_AI[language]),
        any(f" {phrase} " in words for phrase in _SAYS_RECORDED[language]),
    )


def check_elevenlabs_disclosure(ctx: Context) -> Result:
    """The agent's first message, as a callee hears it ({{disclosure}} and {{business_name}}
    filled in from CALL_DISCLOSURE and CALL_BUSINESS_NAME), says in the agent's language that
    the caller is an AI assistant and that the call may be recorded."""
    what = "ElevenLabs disclosure"
    if not ctx.missing("ELEVENLABS_API_KEY") and ctx.missing("ELEVENLABS_AGENT_ID"):
        return skipped(what, ["ELEVENLABS_AGENT_ID"])
    agent = _agent(ctx, what)
    if isinstance(agent, Result):
        if agent.status == FAIL:  # the agent check above says why
            return Result(SKIP, f"{what}: not checked, the agent could not be read (above)")
        return agent
    conversation = (agent.get("conversation_config") or {}).get("agent") or {}
    first = str(conversation.get("first_message") or "")
    language = str(conversation.get("language") or "en").split("-")[0].lower()
    config = ctx.config
    heard = first.replace("{{disclosure}}", config.disclosure).replace(
        "{{business_name}}", config.call_business_name
    )
    fix = (
        "start the agent's first message (ElevenLabs > Agents > the agent > First message) with "
        "{{disclosure}}, which place_call fills from CALL_DISCLOSURE, or say it in the message "
        "itself (FCC 24-17, EU AI Act art. 50, ElevenLabs' terms)"
    )
    if language not in _SAYS_AI:
        return Result(
            WARN,
            f"{what}: the agent speaks {language!r}, which this check cannot read; make sure its "
            f"first message says that the caller is an AI assistant and that the call may be "
            f"recorded: {fix}",
        )
    ai, recorded = says_disclosure(heard, language)
    if ai and recorded:
        return Result(
            OK,
            f"{what}: the first message says the caller is an AI assistant and that the call "
            f"may be recorded ({language})",
        )
    missing = " and ".join(
        part
        for part, said in (
            ("that the caller is an AI assistant", ai),
            ("that the call may be recorded", recorded),
        )
        if not said
    )
    return Result(WARN, f"{what}: the first message does not say {missing} ({language}); {fix}")


def check_elevenlabs_phone_number(ctx: Context) -> Result:
    """ELEVENLABS_PHONE_NUMBER_ID exists, can call out, is on ELEVENLABS_TELEPHONY, and is the
    expected number (ELEVENLABS_PHONE_NUMBER, default +17863212663; a warning otherwise)."""
    what = "ElevenLabs phone number"
    if not ctx.missing("ELEVENLABS_API_KEY") and ctx.missing("ELEVENLABS_PHONE_NUMBER_ID"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_PHONE_NUMBER_ID is not set, so no call can be placed; copy the "
            f"id of {ctx.value('ELEVENLABS_PHONE_NUMBER') or DEFAULT_AGENT_NUMBER} from "
            "ElevenLabs > Phone Numbers",
        )
    number_id = ctx.value("ELEVENLABS_PHONE_NUMBER_ID")
    number = _elevenlabs_read(ctx, what, lambda client: client.phone_number(number_id))
    if isinstance(number, Result):
        return number
    actual = str(number.get("phone_number") or "?")
    provider = number.get("provider")
    telephony = ctx.config.elevenlabs_telephony
    if number.get("supports_outbound") is False:
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) cannot place outbound calls; enable outbound in "
            "ElevenLabs > Phone Numbers (Twilio: a number of the account; SIP: the trunk's "
            "outbound settings)",
        )
    if provider not in ("twilio", "sip_trunk"):
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) is a {provider or 'unknown'} number, but place_call "
            "calls through ElevenLabs' Twilio or SIP trunk outbound call only; use a Twilio or "
            "SIP trunk number (ElevenLabs > Phone Numbers)",
        )
    if provider != telephony:
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) is a {provider} number but ELEVENLABS_TELEPHONY is "
            f"{telephony}; set ELEVENLABS_TELEPHONY={provider}",
        )
    expected = ctx.value("ELEVENLABS_PHONE_NUMBER") or DEFAULT_AGENT_NUMBER
    if actual != expected:
        return Result(
            WARN,
            f"{what}: {number_id} is {actual}, not {expected}: leads see {actual} calling. Set "
            f"ELEVENLABS_PHONE_NUMBER_ID to the id of {expected} (ElevenLabs > Phone Numbers), "
            f"or ELEVENLABS_PHONE_NUMBER={actual} if the number changed",
        )
    return Result(OK, f"{what}: {number_id} is {actual} ({provider or '?'})")


def check_elevenlabs_webhook_secret(ctx: Context) -> Result:
    """ELEVENLABS_WEBHOOK_SECRET is set: without it every post-call webhook is refused."""
    what = "ElevenLabs webhook secret"
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    if ctx.missing("ELEVENLABS_WEBHOOK_SECRET"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_WEBHOOK_SECRET is not set, so every post-call webhook is "
            "refused and no call outcome (voicemail, busy, no answer) is recorded; "
            + WEBHOOK_SETUP,
        )
    count = len([s for s in ctx.value("ELEVENLABS_WEBHOOK_SECRET").split(",") if s.strip()])
    return Result(
        OK,
        f"{what}: set ({count} secret{'s' if count != 1 else ''}; post-call webhooks to "
        "place_call/webhook are verified with it)",
    )


RETRIES_SETUP = (
    "`make elevenlabs-webhook` (ENV=production for the deployed project) turns them on, so a "
    "5xx, 429 or timeout of place_call is delivered again, up to 5 times over about 40 minutes"
)


def to_place_call(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The workspace webhooks (``GET /v1/workspace/webhooks``) that deliver to
    place_call/webhook."""
    return [
        hook
        for hook in answer.get("webhooks") or []
        if isinstance(hook, dict)
        and str(hook.get("webhook_url") or "").rstrip("/").endswith(WEBHOOK_PATH)
    ]


def hook_name(hook: dict[str, Any]) -> str:
    return f"{hook.get('name') or hook.get('webhook_id')} ({hook.get('webhook_url')})"


def post_call_settings(settings: dict[str, Any], agent: dict[str, Any] | None) -> dict[str, Any]:
    """The post-call webhook settings calls of the agent get: the workspace's (``GET
    /v1/convai/settings`` ``webhooks``) with what the agent overrides
    (``platform_settings.workspace_overrides.webhooks``, its non-null fields) over them."""
    effective = dict(settings.get("webhooks") or {})
    platform = (agent or {}).get("platform_settings") or {}
    overrides = ((platform.get("workspace_overrides") or {}).get("webhooks")) or {}
    effective.update({k: v for k, v in overrides.items() if v is not None})
    return effective


def selected_hook(hooks: list[dict[str, Any]], effective: dict[str, Any]) -> dict[str, Any]:
    """Of the webhooks to place_call (``hooks``, not empty), the one the post-call settings
    select, else the first."""
    chosen = effective.get("post_call_webhook_id")
    return next((hook for hook in hooks if hook.get("webhook_id") == chosen), hooks[0])


def read_webhooks(ctx: Context, what: str) -> dict[str, Any] | Result:
    return _elevenlabs_read(
        ctx, what, lambda client: client.workspace_webhooks(), once="workspace_webhooks"
    )


def read_post_call_settings(ctx: Context, what: str) -> dict[str, Any] | Result:
    """The effective post-call settings (the workspace's, the agent's overrides over them)."""
    answer = _elevenlabs_read(
        ctx, what, lambda client: client.convai_settings(), once="convai_settings"
    )
    if isinstance(answer, Result):
        return answer
    agent = _agent(ctx, what) if not ctx.missing("ELEVENLABS_AGENT_ID") else None
    return post_call_settings(answer, agent if isinstance(agent, dict) else None)


def check_elevenlabs_workspace_webhook(ctx: Context) -> Result:
    """The workspace webhook to place_call/webhook exists, is enabled (not by hand, not
    automatically after repeated failures), did not fail in the last 24 hours, and has
    retries on (ElevenLabs' default is off)."""
    what = "ElevenLabs webhook"
    answer = read_webhooks(ctx, what)
    if isinstance(answer, Result):
        return answer
    hooks = to_place_call(answer)
    if not hooks:
        return Result(
            WARN,
            f"{what}: no workspace webhook delivers to …{WEBHOOK_PATH}, so call outcomes are "
            f"only read late from the conversation API; {WEBHOOK_SETUP}",
        )
    effective = read_post_call_settings(ctx, what)
    hook = selected_hook(hooks, effective if isinstance(effective, dict) else {})
    name = hook_name(hook)
    if hook.get("is_auto_disabled"):
        return Result(
            FAIL,
            f"{what}: {name} was disabled by ElevenLabs after repeated failures (last error "
            f"{hook.get('most_recent_failure_error_code') or '?'}); fix what place_call answers "
            "(`make logs ENV=production PROVIDER=elevenlabs STATUS=rejected`), then enable it "
            "again in the workspace settings",
        )
    if hook.get("is_disabled"):
        return Result(
            FAIL, f"{what}: {name} is disabled; enable it in ElevenLabs > workspace settings"
        )
    failed_at = hook.get("most_recent_failure_timestamp")
    retries = hook.get("retry_enabled")
    if isinstance(failed_at, int) and failed_at > ctx.now - FAILURE_WINDOW_SECONDS:
        when = datetime.fromtimestamp(failed_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return Result(
            WARN,
            f"{what}: {name} failed at {when} (HTTP "
            f"{hook.get('most_recent_failure_error_code') or '?'}); "
            + (
                "ElevenLabs retries a 5xx, 429 or timeout, not a 4xx"
                if retries
                else "its retries are off, so ElevenLabs did not deliver it again"
            )
            + ": place_call's sweep reads the missed outcomes later. Check "
            "ELEVENLABS_WEBHOOK_SECRET and place_call's logs",
        )
    if retries is False:
        return Result(
            WARN,
            f"{what}: {name} enabled, no failure in the last 24 hours, but its retries are off "
            f"(ElevenLabs' default): {RETRIES_SETUP}",
        )
    return Result(
        OK,
        f"{what}: {name} enabled, no failure in the last 24 hours"
        + (", retries on" if retries else ""),
    )


def check_elevenlabs_post_call_settings(ctx: Context) -> Result:
    """The agent's calls send their post-call webhook to place_call/webhook, with the
    transcript (opt-outs are read from it) as JSON and the call initiation failures: the
    workspace's settings (``GET /v1/convai/settings``) with the agent's overrides."""
    what = "ElevenLabs post-call webhook"
    hooks = read_webhooks(ctx, what)
    if isinstance(hooks, Result):
        return hooks
    effective = read_post_call_settings(ctx, what)
    if isinstance(effective, Result):
        return effective
    where = "ElevenLabs > Agents > Settings > Post-call webhook"
    selected = effective.get("post_call_webhook_id")
    ours = {hook.get("webhook_id"): hook for hook in to_place_call(hooks)}
    if not selected:
        return Result(
            FAIL,
            f"{what}: none is selected, so no call outcome arrives by webhook; in {where}, "
            "choose the webhook to …/place_call/webhook",
        )
    if selected not in ours:
        other = next(
            (h for h in hooks.get("webhooks") or [] if h.get("webhook_id") == selected), None
        )
        return Result(
            FAIL,
            f"{what}: the one selected ({hook_name(other) if other else selected}) does not "
            f"deliver to …{WEBHOOK_PATH}; in {where}, choose the webhook to place_call",
        )
    events = effective.get("events")
    events = events if isinstance(events, list) else []
    if "transcript" not in events:
        return Result(
            FAIL,
            f"{what}: the transcript event is not selected, so no call outcome (answered, "
            f"voicemail, opt-out) arrives by webhook; tick Transcript in {where}",
        )
    if effective.get("exclude_transcript"):
        return Result(
            FAIL,
            f'{what}: the transcript is excluded, so an opt-out said on the call ("no me '
            f'llames") is not read from the webhook; untick "exclude transcript" in {where}',
        )
    if effective.get("transcript_format") not in (None, "json"):
        return Result(
            FAIL,
            f"{what}: the transcript is sent as {effective.get('transcript_format')}, which "
            f"place_call does not read; choose JSON in {where}",
        )
    if "call_initiation_failure" not in events:
        return Result(
            WARN,
            f"{what}: the call initiation failure event is not selected, so a call that "
            "never rang (busy, no answer, a failed number) is only read late from the "
            f"conversation API; tick it in {where}",
        )
    return Result(
        OK,
        f"{what}: {hook_name(ours[selected])} with the transcript (JSON) and call initiation "
        "failures",
    )


def check_call_outcomes(ctx: Context) -> Result:
    """Post-call webhooks arrive: no call of the last 24 h needed its outcome read from the
    conversation API (place_call's sweep does that when a webhook never comes)."""
    what = "ElevenLabs call outcomes"
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return skipped(what, missing)
    database = ctx.database()
    after = ctx.config.call_reconcile_after_minutes
    try:
        summary = database.rpc("call_outcome_summary", {"p_after_minutes": after})
    except AppError as err:
        return Result(SKIP, f"{what}: not checked ({err.message})")
    reconciled, waiting = int(summary.get("reconciled") or 0), int(summary.get("waiting") or 0)
    if reconciled:
        last = str(summary.get("last_reconciled_at"))[:16].replace("T", " ")
        return Result(
            WARN,
            f"{what}: {reconciled} call(s) of the last 24 h got no post-call webhook (the last "
            f"at {last} UTC); their outcome was read from the conversation API instead, later. "
            "In ElevenLabs > Agents > Settings > Post-call webhook, check that the webhook (HMAC) "
            "goes to <functions base>/place_call/webhook with the transcript and call initiation "
            "failure events, and that its secret is in ELEVENLABS_WEBHOOK_SECRET; place_call's "
            "log shows the deliveries it refused",
        )
    return Result(
        OK,
        f"{what}: every call of the last 24 h got its post-call webhook"
        + (
            f"; {waiting} placed over {after} min ago still on the line or being read"
            if waiting
            else ""
        ),
    )


# This provider's checks, in the order they run.
CHECKS: tuple[Check, ...] = (
    check_elevenlabs_key,
    check_elevenlabs_credits,
    check_elevenlabs_agent,
    check_elevenlabs_disclosure,
    check_elevenlabs_phone_number,
    check_elevenlabs_webhook_secret,
    check_elevenlabs_workspace_webhook,
    check_elevenlabs_post_call_settings,
    check_call_outcomes,
)
