"""`make elevenlabs-webhook`: turn on the retries of the ElevenLabs workspace webhook that
delivers post-call events to place_call/webhook (off by ElevenLabs' default), then print the
doctor's two webhook checks.

    python -m tools.ops.elevenlabs_webhook            # ENV=production for the deployed project

The webhook itself is created by a workspace admin in ElevenLabs > workspace settings >
Webhooks (its secret is shown once, there), and chosen in Agents > Settings > Post-call
webhook; this command changes nothing else: it keeps the webhook's name and whether it is
disabled, as ``PATCH /v1/workspace/webhooks/{id}`` requires both. With retries on, ElevenLabs
delivers a post-call transcription again after a 5xx, 429 or timeout, up to 5 times over about
40 minutes (https://elevenlabs.io/docs/eleven-api/resources/webhooks); place_call's sweep still
reads any outcome that never arrives.

Exits 0 when retries are on (now or already), 1 when there is no webhook to place_call or
ElevenLabs refused the change, 2 when the settings cannot be read.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from lib.errors import ProviderFailure
from tools.ops.doctor import elevenlabs as checks
from tools.ops.doctor.core import SKIP, Context, Result
from tools.stack.envfile import command_env


def main(env: Mapping[str, str] | None = None) -> int:
    env = command_env("elevenlabs-webhook") if env is None else env
    if env is None:
        return 2
    with Context(env) as ctx:
        client = checks.elevenlabs_client(ctx, "elevenlabs-webhook")
        if isinstance(client, Result):
            print(client.line(), file=sys.stderr)
            return 2
        try:
            listed = client.workspace_webhooks()
        except ProviderFailure as err:
            print(f"elevenlabs-webhook: {err.message}", file=sys.stderr)
            return 2
        hooks = checks.to_place_call(listed)
        if not hooks:
            print(
                f"elevenlabs-webhook: no workspace webhook delivers to …{checks.WEBHOOK_PATH}: "
                + checks.WEBHOOK_SETUP,
                file=sys.stderr,
            )
            return 1
        effective = checks.read_post_call_settings(ctx, "elevenlabs-webhook")
        hook = checks.selected_hook(hooks, effective if isinstance(effective, dict) else {})
        name = checks.hook_name(hook)
        if hook.get("retry_enabled"):
            print(f"{name}: retries were already on; nothing changed.")
        else:
            try:
                client.update_workspace_webhook(
                    str(hook.get("webhook_id")),
                    name=str(hook.get("name") or ""),
                    is_disabled=bool(hook.get("is_disabled")),
                    retry_enabled=True,
                )
            except ProviderFailure as err:
                print(f"elevenlabs-webhook: {name}: {err.message}", file=sys.stderr)
                return 1
            print(f"{name}: retries turned on.")
        ctx.forget_answers()  # read again what the change left
        for check in (
            checks.check_elevenlabs_workspace_webhook,
            checks.check_elevenlabs_post_call_settings,
        ):
            result = check(ctx)
            if result.status != SKIP:
                print(result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
