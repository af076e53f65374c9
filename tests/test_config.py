"""Configuration: built from a mapping, secrets hidden, missing names reported together."""

from __future__ import annotations

import pytest

from lib.config import Config
from lib.errors import ConfigError


def test_config_from_mapping_reads_values_and_defaults() -> None:
    config = Config.from_mapping(
        {"META_APP_SECRET": "s", "HTTP_TIMEOUT_SECONDS": "2.5", "META_GRAPH_VERSION": "v26.0"}
    )
    assert config.meta_app_secret == "s"
    assert config.http_timeout_seconds == 2.5
    assert config.meta_graph_version == "v26.0"
    assert config.meta_graph_url == "https://graph.facebook.com"


def test_config_repr_hides_secrets() -> None:
    config = Config.from_mapping(
        {
            "META_APP_SECRET": "topsecret",
            "META_ACCESS_TOKEN": "EAAx",
            "SUPABASE_SERVICE_ROLE_KEY": "jwt",
            "INTERNAL_TOKEN": "it",
        }
    )
    text = repr(config)
    assert "topsecret" not in text and "EAAx" not in text and "jwt" not in text
    assert "'it'" not in text


def test_config_require_names_every_missing_variable() -> None:
    config = Config.from_mapping({"META_APP_SECRET": "s"})
    with pytest.raises(ConfigError) as caught:
        config.require("META_APP_SECRET", "META_ACCESS_TOKEN", "SUPABASE_URL")
    assert caught.value.missing == ["META_ACCESS_TOKEN", "SUPABASE_URL"]
    assert "META_ACCESS_TOKEN, SUPABASE_URL" in caught.value.message
    assert caught.value.status == 500


def test_config_invalid_number_named() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping({"HTTP_TIMEOUT_SECONDS": "soon", "MAX_BODY_BYTES": "1MB"})
    assert "HTTP_TIMEOUT_SECONDS" in caught.value.message
    assert "MAX_BODY_BYTES" in caught.value.message
    assert "soon" not in caught.value.message


def test_config_secrets_split_for_rotation() -> None:
    config = Config.from_mapping({"META_APP_SECRET": "new, old"})
    assert config.secrets("META_APP_SECRET") == ["new", "old"]


def test_config_secrets_only_separators_invalid() -> None:
    config = Config.from_mapping({"META_APP_SECRET": " , "})
    with pytest.raises(ConfigError) as caught:
        config.secrets("META_APP_SECRET")
    assert "invalid META_APP_SECRET" in caught.value.message


def test_config_every_key_secret_and_token_hidden_from_repr_and_masked_by_deploy() -> None:
    from dataclasses import fields

    from tools.deploy.needs import config_variables

    names = [f.name for f in fields(Config) if f.name.endswith(("_key", "_secret", "_token"))]
    assert len(names) >= 8  # every provider's credentials
    config = Config.from_mapping({name.upper(): f"sentinel-{name}" for name in names})
    text = repr(config)
    assert [name for name in names if f"sentinel-{name}" in text] == []
    secret = {variable.name for variable in config_variables() if variable.secret}
    assert [name.upper() for name in names if name.upper() not in secret] == []
