"""`make doctor`: check the configuration, the database, the migrations, the Meta token and, when
CALENDLY_API_TOKEN is set, the Calendly token and subscription; when ELEVENLABS_API_KEY is set,
the key, credits, agent, phone number, webhook secret, and whether post-call webhooks arrive.

    python -m tools.ops.doctor

Prints one line per check, ``ok``, ``warn``, ``FAIL`` or ``skip`` (not checked: something it
needs is missing or failed above) and exits 1 when any check FAILs, else 0. Settings come from
:func:`tools.stack.envfile.target` (ENV=local, the default, reads .local/dev.env;
ENV=production reads supabase/.env; the first line says which).

Each check is a function of a :class:`Context` returning a :class:`Result` ``(status, message)``;
:data:`CHECKS` lists them in order, so tests can call one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from tools.ops.doctor import calendly, elevenlabs, meta, project
from tools.ops.doctor.core import FAIL, Check, Context, Result
from tools.stack.envfile import command_env

# The registry: every provider's checks, in the order they run.
CHECKS: tuple[Check, ...] = (*project.CHECKS, *meta.CHECKS, *calendly.CHECKS, *elevenlabs.CHECKS)


def run(ctx: Context, checks: tuple[Check, ...] = CHECKS) -> Iterator[Result]:
    """Each check's result, in order, as it completes; a check that crashes is a FAIL and the
    others still run."""
    for check in checks:
        try:
            yield check(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            yield Result(FAIL, f"{check.__name__}: crashed with {type(exc).__name__}: {exc}")


def main(env: Mapping[str, str] | None = None) -> int:
    failed = False
    env = command_env("doctor") if env is None else env
    if env is None:
        return 2
    with Context(env) as ctx:
        for result in run(ctx):
            print(result.line(), flush=True)
            failed = failed or result.status == FAIL
    return 1 if failed else 0
