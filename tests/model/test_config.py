"""The model's settings: a name is a folder inside the store, never a way out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamal.config import load_settings
from streamal.errors import ConfigError


@pytest.mark.parametrize("name", [".", ".."])
def test_a_model_name_that_escapes_the_store_is_a_one_line_config_error(
    tmp_path: Path, name: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"model:\n  name: '{name}'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith("config error: model.name: ") and "\n" not in message
    assert "not '.' or '..'" in message and f"(got '{name}')" in message
