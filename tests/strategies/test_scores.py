"""Scores: worked examples, ranges, equivariance, the numpy edge and devices."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamal.strategies import (
    bald,
    consensus_kl,
    entropy,
    expected_gradient_length,
    least_confidence,
    margin,
    max_disagreement,
    random_scores,
    ratio,
    variation_ratio,
    vote_entropy,
)

FAST = settings(max_examples=40, derandomize=True, deadline=None, database=None)
EPS = 1e-9


@st.composite
def distributions(draw: st.DrawFn, leading: int = 1) -> np.ndarray:
    """Probability vectors of shape ``[*leading dims, C]``."""
    shape = (*(draw(st.integers(1, 6)) for _ in range(leading)), draw(st.integers(2, 5)))
    raw = draw(arrays(np.float64, shape, elements=st.floats(0, 1)))
    weights = raw + 1e-6
    return weights / weights.sum(axis=-1, keepdims=True)


SINGLE = {
    "least_confidence": least_confidence,
    "margin": margin,
    "raw_margin": lambda p: margin(p, raw=True),
    "ratio": ratio,
    "entropy": entropy,
    "normalized_entropy": lambda p: entropy(p, normalized=True),
}
PASSES = {
    "variation_ratio": variation_ratio,
    "vote_entropy": vote_entropy,
    "bald": bald,
    "consensus_kl": consensus_kl,
    "max_disagreement": max_disagreement,
}


def upper_bound(name: str, classes: int, members: int = 1) -> float:
    """The largest value each score can take with ``classes`` classes (and ``members``)."""
    if name == "max_disagreement":  # the consensus holds at least 1/K of each member
        return math.log(members)
    if name in {"least_confidence", "variation_ratio"}:
        return 1 - 1 / classes
    if name in {"entropy", "vote_entropy", "bald", "consensus_kl"}:
        return math.log(classes)
    return 1.0


def test_worked_examples() -> None:
    lc = least_confidence(torch.tensor([[0.95, 0.03, 0.02], [0.45, 0.35, 0.20]]).double())
    torch.testing.assert_close(lc, torch.tensor([0.05, 0.55], dtype=torch.float64))
    gaps = margin(np.array([[0.8, 0.15, 0.05], [0.41, 0.39, 0.2]]), raw=True)
    np.testing.assert_allclose(gaps, [0.65, 0.02], atol=1e-12)
    p = np.array([[1.0, 0.0, 0.0], [0.34, 0.33, 0.33]])
    assert entropy(p)[0] == 0.0
    assert entropy(p)[1] == pytest.approx(1.0985, abs=5e-5)
    assert entropy(p, base=2)[1] == pytest.approx(1.58, abs=5e-3)
    passes = np.array([[[0.7, 0.3]]] * 6 + [[[0.3, 0.7]]] * 4)
    assert variation_ratio(passes)[0] == pytest.approx(0.4)


@pytest.mark.parametrize("name", SINGLE)
@FAST
@given(probs=distributions())
def test_single_pass_scores_stay_in_range(name: str, probs: np.ndarray) -> None:
    scores = SINGLE[name](probs)
    assert scores.shape == (len(probs),)
    assert (scores >= -EPS).all()
    assert (scores <= upper_bound(name, probs.shape[1]) + EPS).all()


@pytest.mark.parametrize("name", PASSES)
@FAST
@given(passes=distributions(leading=2))
def test_pass_scores_stay_in_range(name: str, passes: np.ndarray) -> None:
    scores = PASSES[name](passes)
    assert scores.shape == (passes.shape[1],)
    assert (scores >= 0).all()
    assert (scores <= upper_bound(name, passes.shape[2], passes.shape[0]) + EPS).all()


@pytest.mark.parametrize("name", SINGLE)
@FAST
@given(probs=distributions(), seed=st.integers(0, 2**16))
def test_single_pass_scores_are_permutation_equivariant(
    name: str, probs: np.ndarray, seed: int
) -> None:
    order = np.random.default_rng(seed).permutation(len(probs))
    np.testing.assert_allclose(SINGLE[name](probs[order]), SINGLE[name](probs)[order])


@pytest.mark.parametrize("name", PASSES)
@FAST
@given(passes=distributions(leading=2), seed=st.integers(0, 2**16))
def test_pass_scores_are_equivariant_in_samples_and_invariant_in_passes(
    name: str, passes: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    samples = rng.permutation(passes.shape[1])
    members = rng.permutation(passes.shape[0])
    score = PASSES[name]
    np.testing.assert_allclose(score(passes[:, samples]), score(passes)[samples], atol=1e-12)
    np.testing.assert_allclose(score(passes[members]), score(passes), atol=1e-12)


@FAST
@given(passes=distributions(leading=2))
def test_bald_is_the_mean_kl_from_the_consensus(passes: np.ndarray) -> None:
    np.testing.assert_allclose(bald(passes), consensus_kl(passes), atol=1e-9)


def test_one_dissenting_member_reaches_the_largest_disagreement() -> None:
    members = np.array([[[1.0, 0.0]]] * 3 + [[[0.0, 1.0]]])  # K = 4: one votes alone
    assert max_disagreement(members)[0] == pytest.approx(math.log(4))
    assert max_disagreement(members)[0] > consensus_kl(members)[0]


def test_committee_that_agrees_scores_zero() -> None:
    passes = np.tile(np.array([[0.6, 0.3, 0.1]]), (5, 2, 1))
    for score in PASSES.values():
        np.testing.assert_allclose(score(passes), 0.0, atol=1e-12)


def test_margin_and_ratio_rank_alike_and_normalized_entropy_is_scaled() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    np.testing.assert_allclose(entropy(p, normalized=True), entropy(p) / math.log(3))
    assert margin(p)[0] > margin(p)[1]
    assert ratio(p)[0] > ratio(p)[1]


def test_expected_gradient_length_matches_autograd() -> None:
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(4, 3).double()
    h = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    probs = layer(h).softmax(dim=-1).detach()
    expected = torch.zeros(5, dtype=torch.float64)
    for row in range(5):
        for label in range(3):
            layer.zero_grad()
            loss = torch.nn.functional.cross_entropy(layer(h[row : row + 1]), torch.tensor([label]))
            loss.backward()
            assert layer.weight.grad is not None and layer.bias.grad is not None
            norm = torch.cat([layer.weight.grad.flatten(), layer.bias.grad]).norm()
            expected[row] += probs[row, label] * norm
    torch.testing.assert_close(expected_gradient_length(probs, embeddings=h), expected)


def test_expected_gradient_length_checks_its_embeddings() -> None:
    with pytest.raises(ValueError, match="rows"):
        expected_gradient_length(np.full((2, 2), 0.5), embeddings=np.ones((3, 4)))


def test_random_scores_are_seeded_and_a_generator_advances() -> None:
    p = np.full((4, 2), 0.5)
    np.testing.assert_array_equal(random_scores(p, seed=3), random_scores(p, seed=3))
    rng = np.random.default_rng(3)
    assert not np.array_equal(random_scores(p, seed=rng), random_scores(p, seed=rng))
    assert ((random_scores(p, seed=1) >= 0) & (random_scores(p, seed=1) < 1)).all()


def test_numpy_in_numpy_out_and_tensor_dtype_kept() -> None:
    p = [[0.7, 0.2, 0.1]]
    assert isinstance(margin(np.array(p)), np.ndarray)
    as_float32 = margin(torch.tensor(p))
    assert isinstance(as_float32, torch.Tensor) and as_float32.dtype == torch.float32
    assert margin(np.array([[1, 0]])).dtype == np.float64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: margin(np.ones((2, 1))), "at least 2 classes"),
        (lambda: ratio(np.ones((2, 1))), "at least 2 classes"),
        (lambda: entropy(np.ones((2, 1)), normalized=True), "at least 2 classes"),
        (lambda: least_confidence(np.ones(3)), "2 dimensions"),
        (lambda: bald(np.ones((2, 3))), "3 dimensions"),
        (lambda: variation_ratio(np.ones((2, 3))), "3 dimensions"),
    ],
)
def test_bad_shapes_are_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scores_run_on_the_gpu_and_agree_with_the_cpu() -> None:
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(64, 5, generator=generator, dtype=torch.float64).softmax(dim=-1)
    passes = torch.rand(8, 64, 5, generator=generator, dtype=torch.float64).softmax(dim=-1)
    h = torch.randn(64, 16, generator=generator, dtype=torch.float64)
    for name, score in SINGLE.items():
        on_gpu = score(probs.cuda())
        assert on_gpu.is_cuda, name
        torch.testing.assert_close(on_gpu.cpu(), score(probs))
    for name, score in PASSES.items():
        on_gpu = score(passes.cuda())
        assert on_gpu.is_cuda, name
        torch.testing.assert_close(on_gpu.cpu(), score(passes))
    egl = expected_gradient_length(probs.cuda(), embeddings=h.cuda())
    torch.testing.assert_close(egl.cpu(), expected_gradient_length(probs, embeddings=h))
    assert random_scores(probs.cuda(), seed=0).is_cuda
