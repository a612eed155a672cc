"""The contract check suite passes every shipped model and catches a broken one."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from importlib import import_module
from pathlib import Path

import pytest
import torch

from streamal.checks import ModelCheckError, check_model
from streamal.examples import images, text
from streamal.messages import Sample
from streamal.model import Encoded, Labeled, ModelConfig, StreamModel
from streamal.simulation.streams import gaussian_classes


def test_the_default_model_passes_every_check(tmp_path: Path) -> None:
    stream = gaussian_classes(1500, n_features=6, spread=1.5, seed=1)
    samples = stream.samples(range(len(stream.ids)))
    labels = [stream.classes[c] for c in stream.labels]
    config = ModelConfig(n_features=6, classes=stream.classes, device="cpu")
    checks = check_model(config, samples, labels, workdir=tmp_path)
    assert [check.name for check in checks] == [
        "reads every sample", "predicts", "learns", "warm-starts", "checkpoints",
        "runs the loop", "selects from a pool",
    ]  # fmt: skip
    assert all(check.passed for check in checks)
    assert "10 distinct picks of 10 with margin + badge" in checks[-1].detail


EXAMPLES = {  # the stream, and the options that keep a CPU run short
    "text": (text.stream, {"max_epochs": 10}),
    "images": (partial(images.stream, size=16), {"size": 16, "max_epochs": 10}),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_shipped_example_passes_every_check(tmp_path: Path, example: str) -> None:
    make_stream, options = EXAMPLES[example]
    samples, labels = make_stream(1500, seed=2)
    module = import_module(f"streamal.examples.{example}")
    config = ModelConfig(
        factory=f"streamal.examples.{example}:model", classes=module.CLASSES, device="cpu",
        options=options,
    )  # fmt: skip
    checks = check_model(config, samples, labels, workdir=tmp_path)
    assert all(check.passed for check in checks), checks
    assert "with margin + badge" in checks[-1].detail  # both give embeddings


class Forgetful(StreamModel):
    """Reads features, but never learns (fit does nothing: every logit stays 0, so it always
    answers the first class) and has no embeddings."""

    def __init__(self, classes: list[str], device: torch.device) -> None:
        self.classes, self.device = classes, device
        self.network = torch.nn.Linear(6, len(classes))
        torch.nn.init.zeros_(self.network.weight)
        torch.nn.init.zeros_(self.network.bias)

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        rows = [s.features or [0.0] * 6 for s in samples]
        return Encoded(torch.tensor(rows), list(range(len(samples))))

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        pass


def forgetful(classes: list[str], device: torch.device) -> StreamModel:
    return Forgetful(classes, device)


def test_a_model_that_never_learns_fails_with_the_checks_that_show_it(tmp_path: Path) -> None:
    stream = gaussian_classes(600, n_features=6, spread=1.0, seed=1)
    samples = stream.samples(range(len(stream.ids)))
    labels = [stream.classes[c] for c in stream.labels]
    config = ModelConfig(factory=f"{__name__}:forgetful", classes=stream.classes, device="cpu")
    with pytest.raises(ModelCheckError) as failed:
        check_model(config, samples, labels, workdir=tmp_path)
    message = str(failed.value)
    assert message.startswith("learns: accuracy ") and "(bar " in message, message
    assert "predicts" not in message and "checkpoints" not in message, message


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_shipped_example_trains_serves_and_selects_on_the_gpu(
    tmp_path: Path, example: str
) -> None:
    module = import_module(f"streamal.examples.{example}")
    samples, labels = module.stream(2000, seed=2)
    config = ModelConfig(
        factory=f"streamal.examples.{example}:model", classes=module.CLASSES, device="cuda"
    )
    torch.cuda.reset_peak_memory_stats()
    checks = check_model(config, samples, labels, workdir=tmp_path)
    assert all(check.passed for check in checks), checks
    assert torch.cuda.max_memory_allocated() > 0  # trained and served on the GPU
