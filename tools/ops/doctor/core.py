"""What the checks share: the statuses, a check's result, the context (the settings, one HTTP
client, answers fetched once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from lib.db import Database
from lib.errors import ConfigError, ProviderFailure
from meta_webhook.graph_api import GraphClient, graph_for
from tools import ROOT
from tools.settings import everything

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
MIGRATIONS = ROOT / "supabase" / "migrations"


class Result(NamedTuple):
    status: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4} {self.message}"


@dataclass
class Context:
    """What the checks share: the settings, one HTTP client, and the debug_token answer."""

    env: Mapping[str, str]
    now: float = field(default_factory=time.time)
    migrations_dir: Path = MIGRATIONS
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    _token: dict[str, Any] | ProviderFailure | None = field(default=None, init=False, repr=False)
    # The Calendly checks' answers (the account, the subscriptions for the URL), fetched once.
    _calendly: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    # ElevenLabs answers more than one check reads (the agent), fetched once: answer or failure.
    _elevenlabs: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __enter__(self) -> Context:
        return self

    def forget_answers(self) -> None:
        """Read the providers again on the next check (after a command changed something)."""
        self._token = None
        self._calendly.clear()
        self._elevenlabs.clear()

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def value(self, name: str) -> str:
        return (self.env.get(name) or "").strip()

    def missing(self, *names: str) -> list[str]:
        return [name for name in names if not self.value(name)]

    @property
    def config(self) -> Any:
        """The declared settings (every function's and the tools'), read from ``env``; an
        invalid value (check_variables reports it) is left at its default."""
        declared = everything()
        try:
            return declared.load(self.env)
        except ConfigError as err:
            valid = {k: v for k, v in self.env.items() if k not in err.invalid}
            try:
                return declared.load(valid)
            except ConfigError:  # only together are they wrong: every default
                return declared.load({})

    def database(self) -> Database:
        """The database API of SUPABASE_URL with SUPABASE_SERVICE_ROLE_KEY, on the shared client."""
        return Database(
            self.value("SUPABASE_URL"),
            self.value("SUPABASE_SERVICE_ROLE_KEY"),
            http_client=self.http,
        )

    def graph(self, token_variable: str = "META_ACCESS_TOKEN") -> GraphClient:  # noqa: S107 - a name
        """The Graph client of the token in variable ``token_variable``."""
        return self.graph_with(self.value(token_variable))

    def graph_with(self, token: str) -> GraphClient:
        """The Graph client of ``token`` (an app token ``<app id>|<app secret>``, say)."""
        return graph_for(self.config, token, self.http)

    def token_info(self) -> dict[str, Any]:
        """``debug_token``'s ``data`` for META_ACCESS_TOKEN (fetched once); ProviderFailure if it
        failed."""
        if self._token is None:
            token = self.value("META_ACCESS_TOKEN")
            try:
                answer = self.graph().get("debug_token", input_token=token)
                self._token = dict(answer.get("data") or {})
            except ProviderFailure as err:
                self._token = err
        if isinstance(self._token, ProviderFailure):
            raise self._token
        return self._token


Check = Callable[[Context], Result]


def skipped(what: str, missing: list[str]) -> Result:
    return Result(SKIP, f"{what}: not checked, needs {', '.join(missing)}")
