"""Settings: each function declares the variables it reads as a class on :class:`Settings`.

A field is a variable (``meta_app_secret`` is ``META_APP_SECRET``); its type says what a valid
value is (:data:`Secret` for a secret, :data:`Url`, :data:`ClockTime`, a bounded number …), its
default is the one home of that default, and a field without a value (``None``) is one the
function needs but that has none until it is set. The classes are read by the function (from
the environment, by pydantic-settings, once per process) and by the tools: ``make deploy`` passes
each function exactly its declared variables, ``make doctor`` checks them, and
``supabase/.env.example`` lists their union (tests keep each of these true).

An invalid value is refused by name with what is wrong, never with the value; a missing one is
named when the code that needs it runs (:meth:`Declared.require`), so a function serves the routes
that need only what is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from lib.errors import ConfigError

_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")


def _blank_is_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _clock(value: str) -> str:
    if not _CLOCK.fullmatch(value):
        raise ValueError("must be a time of day as HH:MM, 00:00 to 24:00")
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _time_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        # Postgres, which applies the zone, reads a name in any case; a runtime without a time
        # zone database cannot check it at all.
        known = {zone.lower() for zone in available_timezones()}
        if known and value.lower() not in known:
            raise ValueError("must be an IANA time zone name, like America/New_York") from None
    return value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


# A secret: never in repr or logs; several comma-separated values while one is rotated.
Secret = SecretStr
ClockTime = Annotated[str, AfterValidator(_clock)]
Url = Annotated[str, AfterValidator(_url)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
# ISO 3166-1 alpha-2, in any case (lib.phone reads it upper-cased, as it always did).
Region = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{2}$")]
Seconds = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Minutes = Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class Variable:
    """One declared variable, as the tools see it: ``required`` when it has no default (the code
    that reads it fails without it), ``secret`` when its type is :data:`Secret`."""

    name: str
    required: bool
    secret: bool
    default: str


class Declared(BaseSettings):
    """Variables declared as fields: how they are read, listed and required."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        str_strip_whitespace=True,
        # Built at first use, not at import: a function builds only the classes it reads.
        defer_build=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # An empty or blank variable is unset: its default applies.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if _blank_is_unset(value) is not None}
        return data

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from the process's environment, or from ``env`` alone (the tools' view
        of supabase/.env). A blank value is unset; an invalid one raises :class:`ConfigError`
        naming every such variable and what is wrong with it."""
        try:
            if env is None:
                return cls()
            # Every field passed, None when unset (its default then): nothing is read from
            # this process's environment, as passed values win over it.
            return cls(**{name: env.get(name.upper()) for name in cls.model_fields})
        except ValidationError as err:
            raise _config_error(err) from None

    @classmethod
    def variables(cls) -> list[Variable]:
        """Every variable the class declares, by name."""
        return sorted(
            (
                Variable(
                    name.upper(),
                    required=f.default is None,
                    secret=Secret in getattr(f.annotation, "__args__", (f.annotation,)),
                    default="" if f.default is None else str(f.default),
                )
                for name, f in cls.model_fields.items()
            ),
            key=lambda v: v.name,
        )

    def require(self, *names: str) -> list[str]:
        """The values of ``names`` (``META_APP_SECRET`` …), all set, secrets revealed."""
        values = [_reveal(getattr(self, name.lower())) for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise ConfigError(missing)
        return values

    def secrets(self, name: str) -> list[str]:
        """A secret that may hold several comma-separated values while it is being rotated."""
        (value,) = self.require(name)
        values = [part.strip() for part in value.split(",") if part.strip()]
        if not values:
            raise ConfigError([], invalid={name: "holds only separators"})
        return values


class Settings(Declared):
    """The shared base of a function's settings: what lib/ reads in every function (the
    database, outbound HTTP, request bodies)."""

    supabase_url: Url | None = None
    # A key that runs as service_role (sb_secret_… or the legacy service_role JWT).
    supabase_service_role_key: Secret | None = None
    # Timeout of each provider API call.
    http_timeout_seconds: Seconds = 5.0
    # A batch of 1000 leadgen changes is about 250 kB; 1 MiB leaves room and stops abuse.
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576


class Private(Settings):
    """A function with private routes (lib.http.internal_token), its sweep among them."""

    # The bearer token of the private routes, shared by the scheduler and the functions.
    internal_token: Secret | None = None
    # A sweep works batch after batch until nothing is due or this is spent; it must stay under
    # the function's request timeout (60 s by default on Cloud Functions).
    sweep_time_budget_seconds: Seconds = 45.0


class Phones(Settings):
    """A function that reads phone numbers from what people typed."""

    # The region of a number typed without a country code (ISO 3166-1 alpha-2).
    default_phone_region: Region = "US"


def _reveal(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def _config_error(err: ValidationError) -> ConfigError:
    invalid: dict[str, str] = {}
    for problem in err.errors(include_input=False, include_url=False):
        names = problem.get("ctx", {}).get("names") or [str(part) for part in problem["loc"][:1]]
        reason = problem["msg"].removeprefix("Value error, ")
        if not reason[:2].isupper():  # "Input should be …", not "GCF_MAX_INSTANCES must …"
            reason = reason[:1].lower() + reason[1:]
        for name in names:
            invalid.setdefault(name.upper(), reason)
    return ConfigError([], invalid=invalid)


S = TypeVar("S", bound=Declared)
_LOADED: dict[type[Declared], Declared] = {}


def get_settings(cls: type[S]) -> S:
    """The process's settings of class ``cls``, read once from the environment."""
    found = _LOADED.get(cls)
    if not isinstance(found, cls):
        found = _LOADED[cls] = cls.load()
    return found


def reload_settings() -> None:
    """Read the settings again at their next use (tests that change the environment)."""
    _LOADED.clear()
