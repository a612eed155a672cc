"""The predictor: probabilities, MC-dropout passes, embeddings, device choice, user modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamal.errors import ConfigError
from streamal.model import MLP, ModelConfig, Predictor, build_module, pick_device


def test_probabilities_are_deterministic_and_stochastic_passes_vary() -> None:
    torch.manual_seed(0)
    predictor = Predictor(MLP(6, 3, [32, 32], dropout=0.5), ["a", "b", "c"], version=1)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    first, second = predictor.probabilities(x), predictor.probabilities(x)
    assert torch.equal(first, second)
    passes = predictor.stochastic(x, passes=8)
    assert passes.shape == (8, 4, 3)
    assert torch.allclose(passes.sum(-1), torch.ones(8, 4))
    assert passes.std(0).max() > 0.01  # dropout was on
    assert not predictor.module.training  # and is off again
    assert torch.equal(predictor.probabilities(x), first)


def test_embeddings_are_the_last_hidden_layer() -> None:
    predictor = Predictor(MLP(6, 3, [32, 16], dropout=0.0), ["a", "b", "c"], version=1)
    assert predictor.embeddings(np.zeros((2, 6), dtype=np.float32)).shape == (2, 16)


def test_device_choice() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_predicts_on_the_gpu() -> None:
    predictor = Predictor(
        MLP(6, 3, [32], 0.1), ["a", "b", "c"], version=1, device=pick_device("cuda")
    )
    out = predictor.probabilities(np.zeros((3, 6), dtype=np.float32))
    assert out.device.type == "cuda"


def user_module(n_features: int, n_classes: int) -> torch.nn.Module:
    return torch.nn.Linear(n_features, n_classes)


def test_a_user_module_by_import_path() -> None:
    config = ModelConfig(
        n_features=5, classes=["x", "y"], module="tests.model.test_predictor:user_module"
    )
    module = build_module(config)
    assert isinstance(module, torch.nn.Linear) and module.out_features == 2


def test_a_bad_import_path_names_the_field() -> None:
    config = ModelConfig(module="tests.model.nowhere:make")
    with pytest.raises(ConfigError, match=r"config error: model\.module: No module named"):
        build_module(config)
