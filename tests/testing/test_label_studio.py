"""The Label Studio harness: a server starts from the migrated template, takes the test user's
token, keeps its data apart, and leaves no process or folder behind."""

from __future__ import annotations

import os
import urllib.error

import pytest

from streamal.testing.label_studio import USERNAME, LabelStudio, fetch


def test_a_server_starts_from_the_template_and_stops_without_leftovers(
    label_studio: LabelStudio,
) -> None:
    fetch()  # installed and migrated already: returns at once
    server = LabelStudio().start()
    assert server.port != label_studio.port
    assert server._process is not None
    pgid = server._process.pid
    assert server.api("GET", "/api/current-user/whoami")["email"] == USERNAME
    created = server.api("POST", "/api/projects/", {"title": "harness probe"})
    titles = [
        p["title"] for p in label_studio.api("GET", "/api/projects/?page_size=1000")["results"]
    ]
    assert "harness probe" not in titles  # each server has a data folder of its own
    server.token = "wrong-token"
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.api("GET", f"/api/projects/{created['id']}/")
    assert refused.value.code == 401
    data = server.data_dir
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert not data.exists()
