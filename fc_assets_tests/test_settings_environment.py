"""`Settings.from_environment` reads the environment exactly as pydantic-settings' `BaseSettings` would
(the settings moved off pydantic-settings for start-up time): same values, same defaults, same errors."""

from __future__ import annotations

import random

import pydantic
import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from fc_assets.settings import Settings


class Reference(Settings, BaseSettings):
    """The same fields read by pydantic-settings (what `Settings` was before)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)


def _variables() -> list[tuple[str, str]]:
    """(variable, field) for every variable a field may be read from."""
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names += [
            (str(a), name)
            for a in (alias.choices if isinstance(alias, pydantic.AliasChoices) else [field.alias])
        ]
        names.append((name, name))
    return names


VALID = {int: ["0", "1", "7", "-3"], float: ["0.25", "1", "30"], bool: ["true", "no", "1", "off"]}
TEXT = ["", "s3://b/p", "http://h:1", "eu-west-2", "a secret"]


def _value(rng: random.Random, field: str) -> str:
    kind = Settings.model_fields[field].annotation
    if rng.random() < 0.1:
        return rng.choice(["", "x", "1.5e999"])  # invalid for numbers and booleans
    return rng.choice(VALID.get(kind, TEXT))


@pytest.mark.parametrize("seed", range(40))
def test_same_settings_as_pydantic_settings(monkeypatch, seed):
    rng = random.Random(seed)
    for var, field in rng.sample(_variables(), 6):
        name = var.lower() if rng.random() < 0.3 else var  # names are case-insensitive
        monkeypatch.setenv(name, _value(rng, field))
    try:
        expected = Reference().model_dump(mode="json")
    except pydantic.ValidationError as e:
        with pytest.raises(pydantic.ValidationError) as got:
            Settings.from_environment()
        assert [err["loc"] for err in got.value.errors()] == [err["loc"] for err in e.errors()]
        return
    got = Settings.from_environment()
    assert got.model_dump(mode="json") == expected
    # secrets stay secret
    assert "fc-sandbox-secret" not in repr(got)


def test_alias_choices_and_field_names(monkeypatch):
    monkeypatch.setenv("aws_default_region", "eu-west-2")
    monkeypatch.setenv("REJECT_THRESHOLD", "0.5")
    monkeypatch.setenv("fc_fluent_page_size", "7")
    s = Settings.from_environment()
    assert (s.aws_region, s.reject_threshold, s.fluent_page_size) == ("eu-west-2", 0.5, 7)
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")  # the first choice wins
    assert Settings.from_environment().aws_region == "ap-southeast-2"


def test_a_bad_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("FC_FLUENT_PAGE_SIZE", "many")
    with pytest.raises(pydantic.ValidationError, match="FC_FLUENT_PAGE_SIZE"):
        Settings.from_environment()
