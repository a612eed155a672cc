"""The image example: compact payloads, a small CNN that learns the generated shapes, MC
dropout, embeddings, checkpoints, and a frozen backbone with head-only training."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.errors import ConfigError
from streamal.examples.images import (
    CLASSES,
    ImageModel,
    decode_image,
    image_payload,
    save_backbone,
    stream,
)
from streamal.messages import Sample
from streamal.model import Labeled, ModelConfig, Predictor, model_factory

FACTORY = "streamal.examples.images:model"
# Six classes: chance is 1/6. Trained on 600 images (200 more for early stopping), the CNN
# reached 0.905 and 0.901 on 1,000 fresh ones (two seeds), and a head on a frozen backbone
# 0.91; the same CNN reaches about 0.97 on 3,000, so 600 labels, not the noise, limit it.
# 0.8 is far above chance and above a model that confuses one pair of classes (about 5/6 at
# best), with room for the spread between seeds and thread counts.
ACCURACY_BAR = 0.8


def labeled(n: int, seed: int) -> Labeled:
    samples, labels = stream(n, seed=seed)
    return Labeled(samples, np.array([CLASSES.index(label) for label in labels]))


def accuracy(model: ImageModel, data: Labeled) -> float:
    encoded = model.encode(data.samples)
    predicted = Predictor(model, version=1).probabilities(encoded.inputs).argmax(1)
    return float((predicted.cpu().numpy() == data.targets[encoded.kept]).mean())


def factory(**options: object) -> ImageModel:
    config = ModelConfig(classes=CLASSES, factory=FACTORY, options=options, device="cpu")
    made = model_factory(config)()
    assert isinstance(made, ImageModel)
    return made


def checkpoint_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def test_set() -> Labeled:
    return labeled(1000, seed=3)


@pytest.fixture(scope="module")
def trained() -> ImageModel:
    """The full CNN trained on 600 labeled images (200 more for early stopping).

    On one thread: convolutions this small gain nothing from a second one, and on a busy
    2-core machine two threads waiting on each other made this fit 5x slower (57 s, not 11 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = factory()
        model.fit(labeled(600, seed=1), labeled(200, seed=2), start=None)
    finally:
        torch.set_num_threads(threads)
    return model


def test_learns_the_stream(trained: ImageModel, test_set: Labeled) -> None:
    assert accuracy(trained, test_set) >= ACCURACY_BAR
    assert not trained.network.training


def test_the_stream_is_deterministic_and_balanced() -> None:
    samples, labels = stream(300, seed=5)
    assert (samples, labels) == stream(300, seed=5)
    assert [s.payload for s in samples] != [s.payload for s in stream(300, seed=6)[0]]
    assert len({s.id for s in samples}) == 300
    assert all(s.features is None for s in samples)
    counts = [labels.count(name) for name in CLASSES]
    assert min(counts) >= 30  # about 50 each
    with pytest.raises(ValueError, match="unknown classes"):
        stream(1, classes=["circle", "hexagon"])


def test_payload_round_trip_and_size() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    payload = image_payload(pixels)
    assert np.array_equal(decode_image(payload, (28, 28)), pixels)
    sample = Sample(id="img-0", payload=payload)
    assert 1000 < len(sample.model_dump_json()) < 1200  # 784 pixels, 1,048 of base64
    as_floats = json.dumps((pixels / 255).round(4).tolist())
    assert len(as_floats) > 4 * len(sample.model_dump_json())
    with pytest.raises(ValueError, match="uint8"):
        image_payload(pixels.astype(np.float32))


def test_bad_payloads_are_rejected_and_the_rest_kept(trained: ImageModel) -> None:
    good, _ = stream(2, seed=9)
    pixels = base64_of(np.zeros((28, 28), np.uint8))
    bad = [
        {"payload": "a string"},
        {"payload": {"image": pixels}},
        {"payload": {"image": "not*base64", "shape": [28, 28]}},
        {"payload": {"image": base64_of(np.zeros((27, 28), np.uint8)), "shape": [28, 28]}},
        {"payload": {"image": base64_of(np.zeros((16, 16), np.uint8)), "shape": [16, 16]}},
        {"payload": {"image": 7, "shape": [28, 28]}},
        {"features": [1.0, 2.0]},
    ]
    batch = [good[0]] + [Sample(id=f"bad-{i}", **b) for i, b in enumerate(bad)] + [good[1]]
    encoded = trained.encode(batch)
    assert encoded.kept == [0, 8]
    assert encoded.rejected == [
        (1, 'payload: expected {"image": base64, "shape": [H, W]} (got str)'),
        (2, "payload: missing shape"),
        (3, "payload: image is not valid base64"),
        (4, "payload: image has 756 bytes, shape [28, 28] needs 784"),
        (5, "payload: shape [16, 16], the model reads [28, 28]"),
        (6, "payload: image must be a base64 string (got int)"),
        (7, 'payload: expected {"image": base64, "shape": [H, W]} (got NoneType)'),
    ]
    alone = trained.encode(good).inputs
    assert torch.equal(encoded.inputs, alone)


def base64_of(pixels: np.ndarray) -> str:
    return str(image_payload(pixels)["image"])


def test_mc_dropout_passes_differ_and_embeddings(trained: ImageModel) -> None:
    inputs = trained.encode(stream(5, seed=11)[0]).inputs
    predictor = Predictor(trained, version=1)
    first = predictor.probabilities(inputs)
    passes = predictor.stochastic(inputs, passes=8)
    assert passes.shape == (8, 5, len(CLASSES))
    assert torch.allclose(passes.sum(-1), torch.ones(8, 5))
    assert passes.std(0).max() > 0.01  # dropout was on
    assert torch.equal(predictor.probabilities(inputs), first)  # and is off again
    assert predictor.embeddings(inputs).shape == (5, 64)
    assert torch.isfinite(predictor.logits(trained.probe())).all()


def test_a_checkpoint_loads_into_a_fresh_model(trained: ImageModel) -> None:
    state = torch.load(io.BytesIO(checkpoint_bytes(trained.state_dict())), weights_only=True)
    fresh = factory()
    fresh.load_state_dict(state)
    inputs = trained.encode(stream(20, seed=12)[0]).inputs
    assert torch.equal(Predictor(fresh, 2).logits(inputs), Predictor(trained, 1).logits(inputs))


def test_a_frozen_backbone_trains_only_the_head(
    trained: ImageModel, test_set: Labeled, tmp_path: Path
) -> None:
    path = tmp_path / "backbone.pt"
    save_backbone(trained, path)
    head_only, again = factory(backbone=str(path)), factory(backbone=str(path))
    assert head_only.backbone is again.backbone  # loaded once per process
    full_state = trained.state_dict()
    head_keys = {f"head.{name}" for name in head_only.state_dict()}
    assert head_keys == {name for name in full_state if name.startswith("head.")}
    head_size = len(checkpoint_bytes(head_only.state_dict()))
    full_size = len(checkpoint_bytes(full_state))
    assert head_size * 10 < full_size  # 3.4 KB against 57 KB

    before = {k: v.clone() for k, v in head_only.backbone.state_dict().items()}
    torch.manual_seed(0)
    head_only.fit(labeled(300, seed=4), labeled(100, seed=5), start=None)
    after = head_only.backbone.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert accuracy(head_only, test_set) >= ACCURACY_BAR
    passes = Predictor(head_only, 1).stochastic(head_only.encode(stream(5, 13)[0]).inputs, 8)
    assert passes.shape == (8, 5, len(CLASSES)) and passes.std(0).max() > 0.01

    warm = factory(backbone=str(path))
    warm.fit(labeled(100, seed=6), labeled(50, seed=7), start=head_only)  # a warm start
    assert accuracy(warm, test_set) >= ACCURACY_BAR


def test_a_backbone_of_another_shape_is_a_one_line_config_error(
    trained: ImageModel, tmp_path: Path
) -> None:
    path = tmp_path / "backbone.pt"
    save_backbone(trained, path)
    with pytest.raises(ConfigError, match=r"frozen backbone .*backbone\.pt") as error:
        factory(backbone=str(path), hidden=32)
    assert "\n" not in str(error.value)
