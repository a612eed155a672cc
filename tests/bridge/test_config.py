"""The bridge's settings: the token is a secret, and a missing one is a one-line error."""

from __future__ import annotations

import pytest

from streamal.cli import main
from streamal.config import load_settings, show


def test_the_token_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMAL_BRIDGE__LABEL_STUDIO__TOKEN", "s3cret-token")
    monkeypatch.setenv("STREAMAL_BRIDGE__LABEL_STUDIO__PROJECT", "42")
    settings = load_settings()
    config = settings.bridge.label_studio
    assert config.token is not None and config.token.get_secret_value() == "s3cret-token"
    assert config.project == 42  # an id; a title is a string
    assert "s3cret-token" not in show(settings) and "s3cret-token" not in repr(settings)


def test_a_missing_token_or_a_bad_url_is_one_line_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bridge", "label-studio"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "config error: bridge.label_studio.token: required (an API token of Label Studio)\n"
    )
    monkeypatch.setenv("STREAMAL_BRIDGE__LABEL_STUDIO__URL", "localhost:8080")
    assert main(["bridge", "label-studio"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: bridge.label_studio.url: ") and err.count("\n") == 1
