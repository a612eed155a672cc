"""The text example: hashed words and character n-grams through an EmbeddingBag learn the
generated topic stream, up to what its noise allows."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from streamal.errors import ConfigError
from streamal.examples import text
from streamal.examples.text import CLASSES, stream
from streamal.messages import Sample
from streamal.model import Labeled, ModelConfig, Predictor, StreamModel, model_factory

CPU = torch.device("cpu")
FACTORY = "streamal.examples.text:model"
LABEL_NOISE = 0.03  # stream()'s default


def labeled(samples: list[Sample], labels: list[str]) -> Labeled:
    return Labeled(samples, np.array([CLASSES.index(label) for label in labels]))


def accuracy(model: StreamModel, samples: list[Sample], labels: list[str]) -> float:
    predictor = Predictor(model, version=1)
    predicted = predictor.probabilities(predictor.encode(samples).inputs).argmax(1)
    return float(np.mean([CLASSES[i] == label for i, label in zip(predicted, labels, strict=True)]))


def best_possible_accuracy(n: int = 3000) -> float:
    """The accuracy of the Bayes classifier that knows how sentences are drawn and sees them
    without typos, against labels with stream()'s label noise: an upper bound for any model.

    It reads each word's probability under each topic from the generator's vocabularies and
    shares, and picks the topic of highest likelihood (topics are equally likely)."""
    other_share = text.OTHER_SHARE / (len(CLASSES) - 1)
    common_share = 1 - text.TOPIC_SHARE - text.OTHER_SHARE
    log_p: dict[str, np.ndarray] = {}
    for word in {w for words in text.TOPICS.values() for w in words} | set(text.COMMON):
        p = np.array(
            [
                text.TOPIC_SHARE * text.TOPICS[topic].count(word) / len(text.TOPICS[topic])
                + sum(
                    other_share * words.count(word) / len(words)
                    for other, words in text.TOPICS.items()
                    if other != topic
                )
                + common_share * text.COMMON.count(word) / len(text.COMMON)
                for topic in CLASSES
            ]
        )
        log_p[word] = np.log(p)
    samples, topics = stream(n, seed=99, typo_rate=0.0, label_noise=0.0)
    right = np.mean(
        [
            CLASSES[int(np.argmax(sum(log_p[w] for w in re.findall(r"\w+", s.payload.lower()))))]
            == topic
            for s, topic in zip(samples, topics, strict=True)
        ]
    )
    # a wrong guess still matches a noisy label when the noise happened to pick it
    return float(right * (1 - LABEL_NOISE) + (1 - right) * LABEL_NOISE / (len(CLASSES) - 1))


@pytest.fixture(scope="module")
def trained() -> StreamModel:
    """The default model trained on 600 labeled sentences (200 more held out)."""
    torch.manual_seed(0)
    model = text.model(CLASSES, CPU)
    model.fit(labeled(*stream(600, seed=1)), labeled(*stream(200, seed=2)), None)
    return model


@pytest.fixture(scope="module")
def test_set() -> tuple[list[Sample], list[str]]:
    return stream(1000, seed=3)


def test_learns_the_stream_up_to_its_noise(
    trained: StreamModel, test_set: tuple[list[Sample], list[str]]
) -> None:
    # 3% of the labels are wrong and some sentences are ambiguous (short, with other topics'
    # words): no model can pass the Bayes bound (about 0.93). With 600 labels the model gets
    # about 0.89 (0.88 to 0.90 over torch seeds); 0.85 leaves 3 standard errors of a
    # 1,000-sample accuracy, and chance is 0.2.
    ceiling = best_possible_accuracy()
    assert 0.9 < ceiling < 0.96  # learnable, but not trivially separable
    measured = accuracy(trained, *test_set)
    assert 0.85 <= measured <= ceiling + 0.03  # the bound, within sampling error


def test_a_warm_start_keeps_what_the_champion_learned(
    trained: StreamModel, test_set: tuple[list[Sample], list[str]]
) -> None:
    torch.manual_seed(1)
    new_labels, validation = labeled(*stream(300, seed=4)), labeled(*stream(200, seed=2))
    warm = text.model(CLASSES, CPU, max_epochs=1)
    warm.fit(new_labels, validation, start=trained)
    cold = text.model(CLASSES, CPU, max_epochs=1)
    cold.fit(new_labels, validation, start=None)
    champion = accuracy(trained, *test_set)
    assert accuracy(warm, *test_set) >= champion - 0.02
    assert accuracy(cold, *test_set) < champion - 0.2  # one epoch alone does not get there
    assert not warm.network.training


def test_bad_payloads_are_rejected_with_their_reason_and_the_rest_kept(
    trained: StreamModel,
) -> None:
    batch = [
        Sample(id="good", payload="The striker scored in the final."),
        Sample(id="number", payload=3),
        Sample(id="features-only", features=[1.0, 2.0]),
        Sample(id="blank", payload="   "),
        Sample(id="punctuation", payload="?!"),
        Sample(id="object", payload={"text": "a hotel by the beach"}),
        Sample(id="also-good", payload="Bank shares fell"),
    ]
    encoded = trained.encode(batch)
    assert encoded.kept == [0, 6]
    assert encoded.rejected == [
        (1, "payload: expected a string (got number)"),
        (2, "payload: expected a string (got null)"),
        (3, "payload: no words in the text"),
        (4, "payload: no words in the text"),
        (5, "payload: expected a string (got object)"),
    ]
    alone = trained.encode([batch[0], batch[6]])
    assert torch.equal(trained.logits(encoded.inputs), trained.logits(alone.inputs))
    nothing = trained.encode(batch[1:3])
    assert nothing.kept == [] and trained.logits(nothing.inputs).shape == (0, len(CLASSES))


def test_the_text_can_be_a_field_of_an_object_payload() -> None:
    model = text.model(CLASSES, CPU, field="text")
    encoded = model.encode(
        [
            Sample(id="a", payload={"text": "a hotel by the beach", "lang": "en"}),
            Sample(id="b", payload={"title": "no text"}),
            Sample(id="c", payload="a string"),
        ]
    )
    assert encoded.kept == [0]
    assert encoded.rejected == [
        (1, "payload.text: expected a string (got null)"),
        (2, "payload: expected an object with a 'text' field (got string)"),
    ]


def test_mc_dropout_passes_differ_and_are_batched_right(
    trained: StreamModel, test_set: tuple[list[Sample], list[str]]
) -> None:
    predictor = Predictor(trained, version=1)
    inputs = predictor.encode(test_set[0][:7]).inputs
    before = predictor.probabilities(inputs)
    passes = predictor.stochastic(inputs, passes=8)
    assert passes.shape == (8, 7, len(CLASSES))
    assert passes.std(0).max() > 0.01  # dropout was on
    assert torch.equal(predictor.probabilities(inputs), before)  # and is off again
    with torch.inference_mode():  # without dropout, every batched pass is the plain one
        repeated = trained.stochastic_logits(inputs, passes=3)
        assert torch.allclose(repeated, trained.logits(inputs).expand(3, -1, -1), atol=1e-6)


def test_embeddings_are_the_hidden_layer(trained: StreamModel) -> None:
    predictor = Predictor(trained, version=1)
    assert predictor.has_embeddings
    inputs = predictor.encode(stream(5, seed=7)[0]).inputs
    assert predictor.embeddings(inputs).shape == (5, 64)


def test_the_probe_gives_finite_logits(trained: StreamModel) -> None:
    probe = trained.probe()
    with torch.inference_mode():
        logits = trained.logits(probe)
    assert logits.shape == (len(text.PROBES), len(CLASSES)) and logits.isfinite().all()


def test_a_checkpoint_loads_into_a_model_made_from_the_config(
    trained: StreamModel, test_set: tuple[list[Sample], list[str]]
) -> None:
    options = {"buckets": 2**14, "dim": 16, "hidden": 64, "dropout": 0.5, "max_epochs": 5}
    config = ModelConfig(classes=CLASSES, factory=FACTORY, options=options, device="cpu")
    fresh = model_factory(config)()
    fresh.load_state_dict(trained.state_dict())
    inputs = trained.encode(test_set[0][:20]).inputs
    assert torch.equal(Predictor(fresh, 2).logits(inputs), Predictor(trained, 1).logits(inputs))
    smaller = model_factory(config.model_copy(update={"options": {"buckets": 1024}}))()
    with pytest.raises(RuntimeError, match="size mismatch"):
        smaller.load_state_dict(trained.state_dict())


def test_bad_options_get_a_one_line_config_error() -> None:
    for options, message in [
        ({"buckets": 0}, "buckets must be at least 1 (got 0)"),
        ({"dropout": 1.0}, "dropout must be in [0, 1) (got 1.0)"),
        ({"layers": 2}, "unexpected keyword argument 'layers'"),
    ]:
        config = ModelConfig(classes=CLASSES, factory=FACTORY, options=options, device="cpu")
        with pytest.raises(
            ConfigError, match=re.escape(f"model.factory: {FACTORY} failed: ")
        ) as error:
            model_factory(config)()
        assert str(error.value).endswith(message) and "\n" not in str(error.value)


def test_the_stream_is_the_same_for_a_seed_and_valid() -> None:
    samples, labels = stream(300, seed=5)
    again, again_labels = stream(300, seed=5)
    assert [s.model_dump() for s in samples] == [s.model_dump() for s in again]
    assert labels == again_labels
    assert [s.payload for s in stream(300, seed=6)[0]] != [s.payload for s in samples]
    assert len({s.id for s in samples}) == 300
    assert all(Sample.model_validate_json(s.model_dump_json()) == s for s in samples)
    assert all(5 <= len(s.payload.split()) <= 20 for s in samples)
    assert set(labels) == set(CLASSES)
    # the label noise changes labels only, drawn apart from the sentences
    clean, true_labels = stream(2000, seed=5, label_noise=0.0)
    noisy, noisy_labels = stream(2000, seed=5)
    assert [s.payload for s in clean] == [s.payload for s in noisy]
    assert 0.015 < np.mean([a != b for a, b in zip(true_labels, noisy_labels, strict=True)]) < 0.045


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trains_and_predicts_on_the_gpu(test_set: tuple[list[Sample], list[str]]) -> None:
    torch.manual_seed(0)
    model = text.model(CLASSES, torch.device("cuda"))
    model.fit(labeled(*stream(600, seed=1)), labeled(*stream(200, seed=2)), None)
    inputs = model.encode(test_set[0]).inputs
    assert inputs.ids.device.type == "cuda"
    assert Predictor(model, 1).stochastic(inputs, passes=4).device.type == "cuda"
    assert accuracy(model, *test_set) >= 0.85
