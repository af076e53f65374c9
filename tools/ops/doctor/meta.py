"""Meta's checks: the access token (valid, not expiring, leads_retrieval), the Page's leadgen
subscription, and leads waiting on the token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lib.errors import AppError, ProviderFailure
from meta_webhook.lead_mapping import disclaimer
from tools.ops.doctor.core import FAIL, OK, SKIP, WARN, Check, Context, Result, skipped

LEADS_SCOPE = "leads_retrieval"
# The other permissions Meta's lead-webhook guide lists, and what each one's absence costs.
# https://developers.facebook.com/docs/marketing-api/guides/lead-ads/quickstart/webhooks-integration
GUIDE_SCOPES = {
    "ads_management": "the ad and campaign names of each lead (ad_name, campaign_name)",
    "pages_show_list": "listing the Page",
    "pages_read_engagement": "reading the Page's lead forms",
    "pages_manage_metadata": "subscribing the Page to the leadgen webhook",
}
FAIL_DAYS = 7  # a token expiring this soon (or already expired) is a failure
WARN_DAYS = 30
DAY = 86_400


_TOKEN_NEEDS = ("META_ACCESS_TOKEN", "META_APP_SECRET")


def check_token_valid(ctx: Context) -> Result:
    """Graph debug_token says META_ACCESS_TOKEN is valid."""
    missing = ctx.missing(*_TOKEN_NEEDS)
    if missing:
        return skipped("Meta token", missing)
    try:
        info = ctx.token_info()
    except ProviderFailure as err:
        return Result(FAIL, f"Meta token: debug_token failed: {err.message}")
    if not info.get("is_valid"):
        # debug_token explains an invalid token in data.error.message.
        error = info.get("error")
        reason = f" ({error.get('message')})" if isinstance(error, dict) else ""
        return Result(
            FAIL,
            f"Meta token: debug_token says META_ACCESS_TOKEN is not valid{reason}; "
            "generate a new long-lived Page access token",
        )
    return Result(
        OK,
        f"Meta token: valid ({info.get('type', 'token')} token of app "
        f"{info.get('application') or info.get('app_id', '?')})",
    )


def _valid_token_info(ctx: Context, what: str) -> dict[str, Any] | Result:
    """debug_token's data, or the skip line when the token check above did not pass."""
    missing = ctx.missing(*_TOKEN_NEEDS)
    if missing:
        return skipped(what, missing)
    try:
        info = ctx.token_info()
    except ProviderFailure:
        return Result(SKIP, f"{what}: not checked, debug_token failed")
    if not info.get("is_valid"):
        return Result(SKIP, f"{what}: not checked, the token is not valid")
    return info


def _expiry(label: str, timestamp: int, now: float) -> tuple[str, str] | None:
    """(status, text) for an expiry ``timestamp`` (0: never), None when far enough away."""
    if not timestamp:
        return None
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = timestamp - now
    if left <= 0:
        return FAIL, f"{label} expired on {when}"
    days = left / DAY
    text = (
        f"{label} expires on {when} (in {days:.0f} days)"
        if days >= 1
        else (f"{label} expires on {when} (in {left / 3600:.0f} hours)")
    )
    if days < FAIL_DAYS:
        return FAIL, text
    if days < WARN_DAYS:
        return WARN, text
    return None


def check_token_expiry(ctx: Context) -> Result:
    """FAIL when the token (or its data access) expires within 7 days, warn within 30."""
    info = _valid_token_info(ctx, "Meta token expiry")
    if isinstance(info, Result):
        return info
    findings = [
        found
        for found in (
            _expiry("the token", int(info.get("expires_at") or 0), ctx.now),
            _expiry("its data access", int(info.get("data_access_expires_at") or 0), ctx.now),
        )
        if found is not None
    ]
    if not findings:
        expires = int(info.get("expires_at") or 0)
        when = (
            "never expires"
            if not expires
            else (f"expires on {datetime.fromtimestamp(expires, UTC):%Y-%m-%d}")
        )
        return Result(OK, f"Meta token expiry: {when}")
    status = FAIL if any(found[0] == FAIL for found in findings) else WARN
    return Result(
        status,
        f"Meta token expiry: {'; '.join(text for _, text in findings)}; "
        "renew META_ACCESS_TOKEN with a long-lived Page access token",
    )


def check_token_scopes(ctx: Context) -> Result:
    """The token has the leads_retrieval permission."""
    info = _valid_token_info(ctx, "Meta token scopes")
    if isinstance(info, Result):
        return info
    scopes = [str(scope) for scope in info.get("scopes") or []]
    if LEADS_SCOPE not in scopes:
        return Result(
            FAIL,
            f"Meta token scopes: {LEADS_SCOPE} is missing (has: "
            f"{', '.join(scopes) or 'none'}); leads cannot be fetched. Grant it "
            "when generating the token",
        )
    missing = [scope for scope in GUIDE_SCOPES if scope not in scopes]
    if missing:
        return Result(
            WARN,
            f"Meta token scopes: {LEADS_SCOPE} granted, but not "
            + "; ".join(f"{scope} (needed for {GUIDE_SCOPES[scope]})" for scope in missing)
            + ". Generate the token again with them (a Page in a client's Business Manager may "
            "need the app's Tech Provider verification first)",
        )
    return Result(OK, f"Meta token scopes: {LEADS_SCOPE} and {', '.join(GUIDE_SCOPES)} granted")


def check_page_subscription(ctx: Context) -> Result:
    """META_PAGE_ID's subscribed_apps lists an app subscribed to the leadgen field."""
    missing = ctx.missing("META_PAGE_ID", *_TOKEN_NEEDS)
    if missing:
        return skipped("page subscription", missing)
    page_id = ctx.value("META_PAGE_ID")
    try:
        apps = ctx.graph().get(f"{page_id}/subscribed_apps").get("data") or []
    except ProviderFailure as err:
        return Result(FAIL, f"page {page_id} subscription: subscribed_apps failed: {err.message}")
    leadgen = [app for app in apps if "leadgen" in (app.get("subscribed_fields") or [])]
    if not leadgen:
        names = ", ".join(str(app.get("name") or app.get("id")) for app in apps) or "none"
        return Result(
            FAIL,
            f"page {page_id} subscription: no app is subscribed to leadgen "
            f"(subscribed apps: {names}); POST /{page_id}/subscribed_apps"
            "?subscribed_fields=leadgen with the Page access token",
        )
    names = ", ".join(str(app.get("name") or app.get("id")) for app in leadgen)
    return Result(OK, f"page {page_id} subscription: subscribed to leadgen ({names})")


def check_pending_leads(ctx: Context) -> Result:
    """Leads that failed on the token or a permission wait for their backoff; once the token
    checks above pass, `make retry` fetches them now."""
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return skipped("pending leads", missing)
    database = ctx.database()
    try:
        summary = database.rpc("meta_pending_summary", {})
    except AppError as err:
        return Result(SKIP, f"pending leads: not checked ({err.message})")
    waiting = int(summary.get("credentials") or 0)
    pending = int(summary.get("pending") or 0)
    if not waiting:
        return Result(OK, f"pending leads: {pending} waiting for a Graph fetch, none on a token")
    token_ok = all(check(ctx).status == OK for check in (check_token_valid, check_token_scopes))
    if token_ok:
        return Result(
            WARN,
            f"pending leads: {waiting} failed on the token or a permission and wait for their "
            "next retry (up to an hour); the token works now: run `make retry` to fetch them now",
        )
    return Result(
        WARN,
        f"pending leads: {waiting} wait for a working token; fix the token (above), then run "
        "`make retry`",
    )


def consent_gap(form: dict[str, Any], keys: list[str]) -> str | None:
    """What ``form`` lacks for CALL_CONSENT=required (``keys``: CALL_CONSENT_CHECKBOXES, empty:
    any box), or None when it asks for consent."""
    boxes = list(disclaimer(form)[1].values())  # as meta_webhook reads a lead's form
    usable = [box for box in boxes if not keys or box.get("key") in keys]
    if not boxes:
        return "no consent checkbox in its custom disclaimer"
    if not usable:
        return f"no checkbox with a key of CALL_CONSENT_CHECKBOXES ({', '.join(keys)})"
    if all(box.get("is_checked_by_default") for box in usable):
        return "its consent checkbox is pre-checked, which is never consent"
    return None


def check_lead_forms_consent(ctx: Context) -> Result:
    """Each active lead form of META_PAGE_ID asks for consent to be called (CALL_CONSENT=required
    calls nobody whose form does not): a checkbox of its custom disclaimer, not pre-checked."""
    config = ctx.config
    if config.call_consent == "off":
        return Result(OK, "lead forms' consent: not checked (CALL_CONSENT=off)")
    missing = ctx.missing("META_PAGE_ID", *_TOKEN_NEEDS)
    if missing:
        return skipped("lead forms' consent", missing)
    page_id = ctx.value("META_PAGE_ID")
    try:
        forms = ctx.graph().lead_forms(page_id)
    except ProviderFailure as err:
        return Result(FAIL, f"lead forms' consent: leadgen_forms failed: {err.message}")
    keys = config.call_rules()["consent_checkboxes"]
    active = [form for form in forms if str(form.get("status", "ACTIVE")).upper() == "ACTIVE"]
    gaps = [(form, consent_gap(form, keys)) for form in active]
    lacking = [(form, gap) for form, gap in gaps if gap]
    listed = ", ".join(f"{form.get('name') or '?'} ({form.get('id')})" for form in active)
    if not lacking:
        return Result(
            OK, f"lead forms' consent: {len(active)} active, each asks for consent: {listed or '-'}"
        )
    effect = (
        "their leads are stored but never called (CALL_CONSENT=required)"
        if config.call_consent == "required"
        else "their leads are called without consent on record (CALL_CONSENT=recorded)"
    )
    each = "; ".join(
        f"{form.get('name') or '?'} ({form.get('id')}): {gap}" for form, gap in lacking
    )
    return Result(
        WARN,
        f"lead forms' consent: {len(lacking)} of {len(active)} active forms ask for no consent, "
        f"{effect}: {each}. In Ads Manager duplicate each form, add to its custom disclaimer a "
        "checkbox, not pre-checked, by which the person agrees to be called by an AI assistant "
        "of the business (and that the call may be recorded)"
        + (f", with a key of CALL_CONSENT_CHECKBOXES ({', '.join(keys)})" if keys else "")
        + ", and use the new form in the ads",
    )


STALE_SECONDS = 86_400  # stages waiting with no upload for this long: a failure


def check_conversions(ctx: Context) -> Result:
    """When META_DATASET_ID is set: the dataset answers with the token the sweep sends with
    (META_CONVERSIONS_TOKEN, else META_ACCESS_TOKEN), and when stages wait, the last successful
    upload is under 24 hours old."""
    what = "Meta conversions"
    if ctx.missing("META_DATASET_ID"):
        return Result(
            SKIP, f"{what}: not checked, META_DATASET_ID is not set (no stage is sent to Meta)"
        )
    missing = ctx.missing("META_APP_SECRET", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return skipped(what, missing)
    dataset = ctx.value("META_DATASET_ID")
    token = "META_CONVERSIONS_TOKEN" if ctx.value("META_CONVERSIONS_TOKEN") else "META_ACCESS_TOKEN"
    try:
        node = ctx.graph(token).get(dataset, fields="id,name,last_fired_time")
    except ProviderFailure as err:
        return Result(
            FAIL,
            f"{what}: dataset {dataset} does not answer with {token}: {err.message} (the token "
            "needs ads_management and the dataset assigned to its system user)",
        )
    try:
        summary = ctx.database().rpc("meta_conversions_summary", {})
    except AppError as err:
        return Result(
            SKIP, f"{what}: dataset {dataset} answers; the outbox not read ({err.message})"
        )
    name = f"{node.get('name') or dataset} ({dataset})"
    waiting = int(summary.get("waiting") or 0)
    last = summary.get("last_sent_at")
    last_text = str(last)[:16].replace("T", " ") + " UTC" if last else "never"
    oldest = summary.get("oldest_waiting")
    if waiting and oldest:
        age = ctx.now - datetime.fromisoformat(str(oldest)).timestamp()
        last_age = ctx.now - datetime.fromisoformat(str(last)).timestamp() if last else float("inf")
        if age > 3600 and last_age > STALE_SECONDS:
            return Result(
                FAIL,
                f"{what}: {waiting} stage(s) waiting, the oldest for {age / 3600:.0f} h, and no "
                f"upload since {last_text}: `make logs ENV=production PROVIDER=meta` shows "
                "conversion.failed with Meta's reason",
            )
    parked = int(summary.get("parked_24h") or 0)
    line = f"{what}: dataset {name} answers; last upload {last_text}; {waiting} waiting"
    if parked:
        return Result(
            WARN,
            f"{line}; {parked} stage(s) parked in the last 24 h (refused by Meta or older than "
            "7 days): `make logs PROVIDER=meta` shows conversion.parked with the reason",
        )
    return Result(OK, line)


def check_app_subscription(ctx: Context) -> Result:
    """The app's Page subscription (``GET /{app-id}/subscriptions`` with the app token, the app
    read from the token's debug_token) is active, has the leadgen field, and calls back the
    deployed meta_webhook (https://<GCP_REGION>-<GCP_PROJECT>.cloudfunctions.net/meta_webhook,
    when both are set)."""
    what = "app subscription"
    missing = ctx.missing(*_TOKEN_NEEDS)
    if missing:
        return skipped(what, missing)
    info = _valid_token_info(ctx, what)
    if isinstance(info, Result):
        return info
    app_id = str(info.get("app_id") or "")
    if not app_id:
        return Result(SKIP, f"{what}: not checked, debug_token names no app")
    secret = ctx.config.secrets("META_APP_SECRET")[0]
    try:
        answer = ctx.graph_with(f"{app_id}|{secret}").get(f"{app_id}/subscriptions")
    except ProviderFailure as err:
        return Result(FAIL, f"{what}: /{app_id}/subscriptions failed: {err.message}")
    pages = [
        s for s in answer.get("data") or [] if isinstance(s, dict) and s.get("object") == "page"
    ]
    where = "App Dashboard > Webhooks > Page"
    if not pages:
        return Result(
            FAIL,
            f"{what}: app {app_id} has no Page subscription, so Meta sends no lead; in {where}, "
            "subscribe with the meta_webhook URL `make deploy` printed and META_VERIFY_TOKEN",
        )
    hook = pages[0]
    url = str(hook.get("callback_url") or "")
    fields = [str(f.get("name") if isinstance(f, dict) else f) for f in hook.get("fields") or []]
    if not hook.get("active"):
        return Result(FAIL, f"{what}: app {app_id}'s Page subscription ({url}) is not active; "
                      f"verify it again in {where}")  # fmt: skip
    if "leadgen" not in fields:
        return Result(FAIL, f"{what}: app {app_id}'s Page subscription lacks the leadgen field; "
                      f"subscribe it in {where}")  # fmt: skip
    project, region = ctx.value("GCP_PROJECT"), ctx.value("GCP_REGION")
    expected = (
        f"https://{region}-{project}.cloudfunctions.net/meta_webhook" if project and region else ""
    )
    if expected and url.rstrip("/") != expected:
        return Result(
            FAIL,
            f"{what}: app {app_id}'s Page subscription calls back {url}, not the deployed "
            f"{expected}; change the Callback URL in {where}",
        )
    return Result(OK, f"{what}: app {app_id}, Page object, leadgen, active, callback {url}")


def check_leads_readable(ctx: Context) -> Result:
    """The token can read a form's leads (``GET /{form-id}/leads``), as `make backfill` and the
    daily recovery do: Leads Access Manager may have cut the app off."""
    what = "lead access"
    missing = ctx.missing("META_PAGE_ID", *_TOKEN_NEEDS)
    if missing:
        return skipped(what, missing)
    page_id = ctx.value("META_PAGE_ID")
    try:
        forms = ctx.graph().lead_forms(page_id)
        if not forms:
            return Result(WARN, f"{what}: page {page_id} has no lead form to read")
        form_id = str(forms[0].get("id"))
        ctx.graph().form_leads(form_id, since=0, limit=1)
    except ProviderFailure as err:
        return Result(
            FAIL,
            f"{what}: the token cannot read page {page_id}'s leads ({err.message}); in Business "
            "Suite > All tools > Leads access, give the app (CRM) access to the Page's leads",
        )
    return Result(OK, f"{what}: the token reads the leads of form {form_id}")


CHECKS: tuple[Check, ...] = (
    check_token_valid,
    check_token_expiry,
    check_token_scopes,
    check_page_subscription,
    check_app_subscription,
    check_leads_readable,
    check_lead_forms_consent,
    check_pending_leads,
    check_conversions,
)
