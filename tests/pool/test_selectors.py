"""Pool selectors: top-k, k-center's 2-approximation, BADGE, SEALS, chunking, devices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from streamal.pool import badge, k_center, min_squared_distances, seals_candidates, top_k


def covering_radius(points: np.ndarray, centers: np.ndarray) -> float:
    distances = np.linalg.norm(points[:, None, :] - centers[None, :, :], axis=-1)
    return float(distances.min(axis=1).max())


def test_top_k_orders_by_utility_then_index() -> None:
    assert top_k(np.array([0.2, 0.9, 0.9, 0.1]), 3).tolist() == [1, 2, 0]
    assert top_k(torch.tensor([0.5, 0.7]), 5).tolist() == [1, 0]
    assert top_k(np.array([0.5]), 0).tolist() == []


@pytest.mark.parametrize(
    ("call", "message"), [((np.ones((2, 2)), 1), "1-D"), ((np.ones(2), -1), "k must be")]
)
def test_top_k_refuses_bad_input(call: tuple[np.ndarray, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        top_k(*call)


@pytest.mark.parametrize("seed", range(8))
def test_k_center_covers_within_twice_the_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(11, 2)) * rng.choice([1.0, 5.0], size=(11, 1))
    k = 3
    optimum = min(
        covering_radius(points, points[list(chosen)])
        for chosen in itertools.combinations(range(len(points)), k)
    )
    picked = k_center(points, k, seed=seed)
    assert len(set(picked.tolist())) == k
    assert covering_radius(points, points[picked]) <= 2 * optimum + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_k_center_with_labeled_centers_covers_within_twice_the_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points, labeled = rng.normal(size=(10, 2)), rng.normal(size=(2, 2))
    k = 2
    optimum = min(
        covering_radius(points, np.r_[labeled, points[list(chosen)]])
        for chosen in itertools.combinations(range(len(points)), k)
    )
    picked = k_center(points, k, centers=labeled)
    assert covering_radius(points, np.r_[labeled, points[picked]]) <= 2 * optimum + 1e-12


def test_k_center_result_does_not_depend_on_the_chunk_size() -> None:
    rng = np.random.default_rng(0)
    points, labeled = rng.normal(size=(300, 8)), rng.normal(size=(40, 8))
    whole = k_center(points, 20, centers=labeled)
    np.testing.assert_array_equal(whole, k_center(points, 20, centers=labeled, chunk_elements=7))


def test_k_center_returns_every_point_once_when_k_exceeds_the_pool() -> None:
    points = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert sorted(k_center(points, 10).tolist()) == [0, 1, 2]
    assert k_center(points, 0).tolist() == []
    assert k_center(np.empty((0, 2)), 3).tolist() == []
    with pytest.raises(ValueError, match="k must be"):
        k_center(points, -1)
    with pytest.raises(ValueError, match="2 dimensions"):
        k_center(np.ones(3), 1)


def test_min_squared_distances_is_chunk_independent() -> None:
    rng = np.random.default_rng(1)
    x, centers = torch.tensor(rng.normal(size=(50, 3))), torch.tensor(rng.normal(size=(9, 3)))
    expected = torch.cdist(x, centers).square().amin(dim=1)
    for chunk in (1, 10, 1 << 20):
        torch.testing.assert_close(
            min_squared_distances(x, centers, chunk_elements=chunk), expected
        )


def test_badge_starts_from_the_largest_gradient_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    embeddings = rng.normal(size=(200, 6))
    picked = badge(probs, embeddings, 15, seed=3)
    residual = probs.copy()
    residual[np.arange(200), probs.argmax(axis=1)] -= 1
    norms = np.linalg.norm(residual, axis=1) * np.linalg.norm(embeddings, axis=1)
    assert picked[0] == norms.argmax()
    assert len(set(picked.tolist())) == 15
    np.testing.assert_array_equal(picked, badge(probs, embeddings, 15, seed=3))


def test_badge_picks_distinct_points_even_from_duplicates() -> None:
    probs, embeddings = np.full((4, 2), 0.5), np.ones((4, 3))
    assert sorted(badge(probs, embeddings, 9).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="rows"):
        badge(probs, embeddings[:2], 1)


def test_seals_candidates_are_the_exact_neighbours_of_labeled_items() -> None:
    rng = np.random.default_rng(2)
    pool, labeled = rng.normal(size=(200, 4)), rng.normal(size=(7, 4))
    distances = np.linalg.norm(labeled[:, None] - pool[None], axis=-1)
    expected = np.unique(np.argsort(distances, axis=1)[:, :5])
    np.testing.assert_array_equal(seals_candidates(pool, labeled, neighbors=5), expected)
    chunked = seals_candidates(pool, labeled, neighbors=5, chunk_elements=1)
    np.testing.assert_array_equal(chunked, expected)
    assert seals_candidates(pool, labeled[:0]).tolist() == []
    with pytest.raises(ValueError, match="neighbors must be"):
        seals_candidates(pool, labeled, neighbors=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_selectors_run_on_the_gpu_and_agree_with_the_cpu() -> None:
    rng = np.random.default_rng(0)
    points = torch.tensor(rng.normal(size=(2000, 16)))
    labeled = torch.tensor(rng.normal(size=(30, 16)))
    probs = torch.tensor(rng.dirichlet(np.ones(5), size=2000))
    cpu = k_center(points, 25, centers=labeled)
    np.testing.assert_array_equal(k_center(points.cuda(), 25, centers=labeled.cuda()), cpu)
    np.testing.assert_array_equal(
        seals_candidates(points.cuda(), labeled.cuda()), seals_candidates(points, labeled)
    )
    np.testing.assert_array_equal(badge(probs.cuda(), points.cuda(), 10), badge(probs, points, 10))
    np.testing.assert_array_equal(top_k(probs[:, 0].cuda(), 10), top_k(probs[:, 0], 10))
