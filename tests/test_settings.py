"""Settings: each function's declared class (lib.settings), read from a mapping or the
environment, secrets hidden, every invalid value named with what is wrong and never shown, and
supabase/.env.example equal to the union of the declarations."""

from __future__ import annotations

import pytest

from calendly_webhook.settings import CalendlyWebhookSettings
from lib.errors import ConfigError
from lib.settings import Private, Settings, get_settings, reload_settings
from meta_webhook.settings import MetaWebhookSettings
from place_call.settings import PlaceCallSettings
from tools import ROOT
from tools.build.functions import function_names, settings_class
from tools.settings import Operator, declarations, everything
from tools.stack import envfile

EXAMPLE = ROOT / "supabase" / ".env.example"


def test_settings_read_values_and_defaults() -> None:
    settings = MetaWebhookSettings.load(
        {"META_APP_SECRET": "s", "HTTP_TIMEOUT_SECONDS": "2.5", "META_GRAPH_VERSION": "v26.0"}
    )
    assert settings.require("META_APP_SECRET") == ["s"]
    assert settings.http_timeout_seconds == 2.5
    assert settings.meta_graph_version == "v26.0"
    assert settings.meta_graph_url == "https://graph.facebook.com"


def test_settings_from_a_mapping_ignore_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("META_GRAPH_VERSION", "v1.0")
    assert MetaWebhookSettings.load({}).meta_graph_version == "v25.0"
    assert MetaWebhookSettings.load().meta_graph_version == "v1.0"


def test_blank_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "  ")
    monkeypatch.setenv("INTERNAL_TOKEN", "")
    settings = Private.load()
    assert settings.max_body_bytes == 1_048_576
    with pytest.raises(ConfigError) as caught:
        settings.require("INTERNAL_TOKEN")
    assert caught.value.missing == ["INTERNAL_TOKEN"]


def test_settings_repr_hides_secrets() -> None:
    settings = everything().load(
        {
            "META_APP_SECRET": "topsecret",
            "META_ACCESS_TOKEN": "EAAx",
            "SUPABASE_SERVICE_ROLE_KEY": "jwt-key-value",
            "INTERNAL_TOKEN": "internal-token",
        }
    )
    text = repr(settings) + str(settings)
    for value in ("topsecret", "EAAx", "jwt-key-value", "internal-token"):
        assert value not in text


def test_require_names_every_missing_variable() -> None:
    settings = MetaWebhookSettings.load({"META_APP_SECRET": "s"})
    with pytest.raises(ConfigError) as caught:
        settings.require("META_APP_SECRET", "META_ACCESS_TOKEN", "SUPABASE_URL")
    assert caught.value.missing == ["META_ACCESS_TOKEN", "SUPABASE_URL"]
    assert "META_ACCESS_TOKEN, SUPABASE_URL" in caught.value.message
    assert caught.value.status == 500


@pytest.mark.parametrize(
    ("env", "reasons"),
    [
        (
            {"HTTP_TIMEOUT_SECONDS": "soon", "MAX_BODY_BYTES": "1MB"},
            {"HTTP_TIMEOUT_SECONDS": "valid number", "MAX_BODY_BYTES": "valid integer"},
        ),
        ({"CALL_HOURS_START": "9am"}, {"CALL_HOURS_START": "HH:MM"}),
        (
            {"CALL_HOURS_START": "20:00", "CALL_HOURS_END": "09:00"},
            {"CALL_HOURS_START": "daytime window", "CALL_HOURS_END": "daytime window"},
        ),
        ({"CALL_DEFAULT_TIMEZONE": "Mars/Olympus"}, {"CALL_DEFAULT_TIMEZONE": "IANA"}),
        ({"ELEVENLABS_TELEPHONY": "pigeon"}, {"ELEVENLABS_TELEPHONY": "'twilio' or 'sip_trunk'"}),
        ({"CALL_MAX_ATTEMPTS": "0"}, {"CALL_MAX_ATTEMPTS": "greater than or equal to 1"}),
        ({"CALL_WAIT_BUSY_MINUTES": "-5"}, {"CALL_WAIT_BUSY_MINUTES": "greater than or equal"}),
        ({"SUPABASE_URL": "localhost:54321"}, {"SUPABASE_URL": "http:// or https:// URL"}),
    ],
)
def test_invalid_values_named_with_what_is_wrong_never_the_value(
    env: dict[str, str], reasons: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        PlaceCallSettings.load(env)
    assert list(caught.value.invalid) == list(reasons)
    for name, reason in reasons.items():
        assert reason in caught.value.invalid[name]
        assert name in caught.value.message
    for value in env.values():
        assert f"{value})" not in caught.value.message and f"'{value}'" not in caught.value.message


def test_secrets_split_for_rotation() -> None:
    settings = MetaWebhookSettings.load({"META_APP_SECRET": "new, old"})
    assert settings.secrets("META_APP_SECRET") == ["new", "old"]


def test_secrets_only_separators_invalid() -> None:
    settings = MetaWebhookSettings.load({"META_APP_SECRET": " , "})
    with pytest.raises(ConfigError) as caught:
        settings.secrets("META_APP_SECRET")
    assert "invalid META_APP_SECRET" in caught.value.message


def test_process_settings_read_once_until_reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    reload_settings()
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "3")
    assert get_settings(Settings).http_timeout_seconds == 3
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "4")
    assert get_settings(Settings).http_timeout_seconds == 3
    reload_settings()
    assert get_settings(Settings).http_timeout_seconds == 4
    reload_settings()


def test_every_key_secret_and_token_is_declared_secret() -> None:
    variables = everything().variables()
    credentials = [v for v in variables if v.name.endswith(("_KEY", "_SECRET", "_TOKEN"))]
    assert len(credentials) >= 9  # every provider's credentials
    assert [v.name for v in credentials if not v.secret] == []


def test_each_function_declares_one_settings_class_on_the_base() -> None:
    found = {name: settings_class(name) for name in function_names()}
    assert found == {
        "calendly_webhook": CalendlyWebhookSettings,
        "meta_webhook": MetaWebhookSettings,
        "place_call": PlaceCallSettings,
    }
    assert all(issubclass(cls, Settings) for cls in found.values())


def test_env_example_lists_exactly_the_declared_variables() -> None:
    listed = envfile.read(EXAMPLE, keep_empty=True)
    declared = {v.name for cls in declarations() for v in cls.variables()}
    assert sorted(set(listed) - declared) == []  # listed, read by nothing
    assert sorted(declared - set(listed)) == []  # read, not listed


def test_env_example_shows_each_default_as_declared() -> None:
    # The default lives in the declaration; the example may show it, and then shows that one.
    listed = {k: v for k, v in envfile.read(EXAMPLE, keep_empty=True).items() if v}
    declared = everything()
    shown = declared.load(listed)
    defaults = declared.load({})
    differ = [
        name
        for name in listed
        if name in {v.name for v in declared.variables() if not v.required}
        and getattr(shown, name.lower()) != getattr(defaults, name.lower())
    ]
    assert differ == []
    assert Operator.load({"ELEVENLABS_MIN_CREDITS": "10000"}).elevenlabs_min_credits == 10_000


def test_values_read_as_they_always_were() -> None:
    # Case and spelling the code read before the declarations stay accepted.
    assert MetaWebhookSettings.load({"DEFAULT_PHONE_REGION": " us "}).default_phone_region == "US"
    for telephony, read in (("SIP-Trunk", "sip_trunk"), ("Twilio", "twilio")):
        settings = PlaceCallSettings.load({"ELEVENLABS_TELEPHONY": telephony})
        assert settings.elevenlabs_telephony == read
    zone = PlaceCallSettings.load({"CALL_DEFAULT_TIMEZONE": "america/new_york"})
    assert zone.call_default_timezone == "america/new_york"  # Postgres reads any case
