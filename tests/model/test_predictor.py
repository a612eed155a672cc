"""The predictor and the model factory: probabilities, MC-dropout passes, embeddings, device
choice, user modules and user models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from streamal.errors import ConfigError
from streamal.messages import Sample
from streamal.model import (
    Encoded,
    FeatureModel,
    Labeled,
    ModelConfig,
    Predictor,
    StreamModel,
    model_factory,
    pick_device,
)


def feature_model(**fields: object) -> FeatureModel:
    return FeatureModel(ModelConfig(**{"n_features": 6, "classes": ["a", "b", "c"], **fields}))


def rows(x: np.ndarray) -> list[Sample]:
    return [Sample(id=str(i), features=row.tolist()) for i, row in enumerate(x)]


def test_probabilities_are_deterministic_and_stochastic_passes_vary() -> None:
    torch.manual_seed(0)
    predictor = Predictor(feature_model(hidden=[32, 32], dropout=0.5), version=1)
    x = predictor.encode(rows(np.random.default_rng(0).normal(size=(4, 6)))).inputs
    first, second = predictor.probabilities(x), predictor.probabilities(x)
    assert torch.equal(first, second)
    passes = predictor.stochastic(x, passes=8)
    assert passes.shape == (8, 4, 3)
    assert torch.allclose(passes.sum(-1), torch.ones(8, 4))
    assert passes.std(0).max() > 0.01  # dropout was on
    assert not predictor.model.network.training  # and is off again
    assert not any(m.training for m in predictor.model.network.modules())
    assert torch.equal(predictor.probabilities(x), first)


def test_embeddings_are_the_last_hidden_layer() -> None:
    predictor = Predictor(feature_model(hidden=[32, 16], dropout=0.0), version=1)
    x = predictor.encode(rows(np.zeros((2, 6)))).inputs
    assert predictor.embeddings(x).shape == (2, 16)


def test_device_choice() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_predicts_on_the_gpu() -> None:
    fresh = model_factory(ModelConfig(n_features=6, classes=["a", "b", "c"], device="cuda"))
    predictor = Predictor(fresh(), version=1)
    out = predictor.probabilities(predictor.encode(rows(np.zeros((3, 6)))).inputs)
    assert out.device.type == "cuda"


def user_module(n_features: int, n_classes: int) -> torch.nn.Module:
    return torch.nn.Linear(n_features, n_classes)


def test_a_user_module_by_import_path() -> None:
    model = feature_model(module="tests.model.test_predictor:user_module")
    assert isinstance(model.network, torch.nn.Linear) and model.network.out_features == 3
    assert not model.has_embeddings  # a Linear has no embed()


def test_a_bad_import_path_names_the_field() -> None:
    config = ModelConfig(module="tests.model.nowhere:make")
    with pytest.raises(ConfigError, match=r"config error: model\.module: No module named"):
        model_factory(config)()


class Lengths(StreamModel):
    """A user model over text payloads: the length of the text, through a linear layer."""

    def __init__(self, classes: list[str], device: torch.device, scale: float = 1.0) -> None:
        self.classes, self.device, self.scale = classes, device, scale
        self.network = torch.nn.Linear(1, len(classes))

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        kept = [i for i, s in enumerate(samples) if isinstance(s.payload, str)]
        rejected = [(i, "payload: not a string") for i in range(len(samples)) if i not in kept]
        lengths = [[len(str(samples[i].payload)) * self.scale] for i in kept]
        return Encoded(torch.tensor(lengths, device=self.device).reshape(-1, 1), kept, rejected)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        raise NotImplementedError  # not needed here


def lengths(classes: list[str], device: torch.device, **options: float) -> StreamModel:
    return Lengths(classes, device, **options)


def not_a_model(classes: list[str], device: torch.device) -> object:
    return torch.nn.Linear(1, 2)


def test_a_user_model_by_import_path_with_its_options() -> None:
    config = ModelConfig(
        classes=["short", "long"], factory="tests.model.test_predictor:lengths",
        options={"scale": 0.5},
    )  # fmt: skip
    model = model_factory(config)()
    assert isinstance(model, Lengths) and model.scale == 0.5 and not model.has_embeddings
    encoded = Predictor(model, 0).encode(
        [Sample(id="a", payload="four"), Sample(id="b", payload=1)]
    )
    assert encoded.inputs.tolist() == [[2.0]] and encoded.rejected == [(1, "payload: not a string")]
    with pytest.raises(TypeError, match="gives no embeddings"):
        Predictor(model, 0).embeddings(encoded.inputs)


@pytest.mark.parametrize(
    ("factory", "options", "message"),
    [
        ("not_a_model", {}, "returned Linear, not a streamal.model.StreamModel"),
        ("lengths", {"size": 3}, "lengths failed: TypeError: .*unexpected keyword argument"),
    ],
)
def test_a_user_factory_that_fails_is_a_one_line_config_error(
    factory: str, options: dict[str, object], message: str
) -> None:
    config = ModelConfig(factory=f"tests.model.test_predictor:{factory}", options=options)
    with pytest.raises(ConfigError, match=rf"^config error: model\.factory: .*{message}") as error:
        model_factory(config)()
    assert "\n" not in str(error.value)


def test_options_without_a_factory_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"options are passed to model\.factory"):
        ModelConfig(options={"scale": 2})


def test_a_user_model_without_embed_gets_one_line_only_where_embeddings_are_read() -> None:
    from streamal.model.scoring import check_embeddings

    config = ModelConfig(classes=["short", "long"], factory="tests.model.test_predictor:lengths")
    predictor = Predictor(model_factory(config)(), 0)
    check_embeddings(predictor, False, "strategy.score", "margin")  # margin reads no embeddings
    with pytest.raises(ConfigError) as error:
        check_embeddings(predictor, True, "strategy.score", "expected_gradient_length")
    assert str(error.value) == (
        "config error: strategy.score: expected_gradient_length needs embeddings, but the model "
        "(Lengths, see model.factory) has no embed() method"
    )
