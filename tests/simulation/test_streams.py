"""The built-in streams: seeded, shaped as they say, with the property each one claims."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from streamal.cli import build_parser
from streamal.errors import ConfigError
from streamal.simulation.streams import (
    BUILTIN,
    HELD_OUT,
    SHORT,
    builtin,
    held_out,
    relocated_classes,
)

N = 6000


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_streams_are_seeded_and_well_formed(name: str) -> None:
    stream, again, other = builtin(name, N, seed=5), builtin(name, N, seed=5), builtin(name, N, 6)
    n = min(N, SHORT) if name == "short" else N
    assert stream.features.shape[0] == len(stream.labels) == len(stream.ids) == n
    assert stream.features.dtype == np.float32 and np.isfinite(stream.features).all()
    assert np.array_equal(stream.features, again.features)
    assert np.array_equal(stream.labels, again.labels) and stream.drifts == again.drifts
    assert not np.array_equal(stream.features, other.features)
    assert len(set(stream.ids)) == n
    assert set(stream.labels.tolist()) == set(range(len(stream.classes)))  # every class shows
    assert all(0 < at < n for at in stream.drifts)


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_streams_are_seeded_and_well_formed(name: str) -> None:
    stream, again, other = (held_out(name, 2000, seed=s) for s in (5, 5, 6))
    assert stream.features.shape[0] == len(stream.labels) == len(set(stream.ids)) == 2000
    assert stream.features.dtype == np.float32 and np.isfinite(stream.features).all()
    assert np.array_equal(stream.features, again.features)
    assert np.array_equal(stream.labels, again.labels) and stream.drifts == again.drifts
    if name != "bananas":  # a dataset, in file order whatever the seed
        assert not np.array_equal(stream.features, other.features)
    assert set(stream.labels.tolist()) == set(range(len(stream.classes)))
    assert stream.drifts == ((1000,) if name in ("agrawal", "sine", "stagger") else ())


def test_held_out_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown held-out stream 'sea'; use bananas, agrawal"):
        held_out("sea", 100)


def test_sparse_counts_are_mostly_zero_and_late_words_start_constant() -> None:
    stream = builtin("sparse", N, seed=0)
    (late_at,) = stream.drifts
    assert (stream.features >= 0).all() and (stream.features == np.round(stream.features)).all()
    assert (stream.features == 0).mean() > 0.9
    late = stream.features[:, -100:]
    assert not late[:late_at].any()  # constant in the first part ...
    assert (late[late_at:].std(axis=0) > 0).mean() > 0.9  # ... and varying later


def test_pixels_are_binary_mostly_zero_with_ten_classes() -> None:
    stream = builtin("pixels", N, seed=0)
    assert stream.features.shape[1] == 64 and len(stream.classes) == 10
    assert set(np.unique(stream.features).tolist()) == {0.0, 1.0}
    assert stream.features.mean() < 0.2


def test_many_classes() -> None:
    assert len(builtin("many_classes", N, seed=0).classes) == 15


def test_rare_class_share() -> None:
    stream = builtin("rare", N, seed=0)
    shares = np.bincount(stream.labels) / len(stream.labels)
    assert 0.02 <= shares[-1] <= 0.04 and shares[-1] == shares.min()


@pytest.mark.parametrize("name", ["relocated", "relocated_gradual"])
def test_relocated_boundary_moves_far_and_is_no_relabeling(name: str) -> None:
    stream = builtin(name, N, seed=0)
    (drift_at,) = stream.drifts
    old = relocated_classes(N, seed=0).labels  # the same samples under the old concept
    assert np.array_equal(stream.labels[:drift_at], old[:drift_at])
    end = slice(N - N // 4, N)  # past the gradual change too
    assert (stream.labels[end] != old[end]).mean() > 0.5
    best = max(
        (np.array(mapping)[old[end]] == stream.labels[end]).mean()
        for mapping in itertools.permutations(range(3))
    )  # fmt: skip
    assert best < 0.6  # no renaming of the old classes explains the new ones


def test_relocated_gradual_changes_over_a_fifth_of_the_stream() -> None:
    stream = builtin("relocated_gradual", N, seed=0)
    (drift_at,) = stream.drifts
    old = relocated_classes(N, seed=0).labels
    changed = stream.labels != old
    early, late = (changed[a : a + N // 20].mean() for a in (drift_at, drift_at + N // 5))
    assert early < late / 2


def test_short_stream_is_short_whatever_is_asked() -> None:
    assert len(builtin("short", 20_000).ids) == SHORT
    assert len(builtin("short", 500).ids) == 500


def test_simulate_help_names_every_builtin_stream(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    words = set(re.findall(r"\w+", capsys.readouterr().out))
    assert set(BUILTIN) <= words
