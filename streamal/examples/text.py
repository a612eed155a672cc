"""Text classification without a tokenizer: hashed words and character n-grams through an
``EmbeddingBag``, and a generated stream of short topical sentences to learn from.

Configure it with ``model.factory: streamal.examples.text:model`` and its options (see
`model`). The payload is the text: a JSON string, or with ``options.field`` set, an object
holding the text in that field.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from streamal.messages import Sample
from streamal.model.config import FitConfig
from streamal.model.contract import Encoded, Labeled, StreamModel
from streamal.model.default import train_network

TOPIC_WORDS = {
    "sports": (
        "match goal coach league season striker referee tournament team player stadium "
        "penalty champion defender keeper final trophy fans injury transfer"
    ),
    "finance": (
        "market shares investor bank interest inflation bond profit earnings stock dividend "
        "currency loan debt budget revenue merger fund price trading"
    ),
    "science": (
        "study researchers experiment cell molecule telescope galaxy protein genome climate "
        "physics theory laboratory quantum species fossil neuron vaccine particle data"
    ),
    "travel": (
        "flight hotel beach passport airport island journey tourist luggage cruise ticket "
        "museum resort mountain visa guide train booking coast village"
    ),
    "food": (
        "recipe kitchen chef flavour dessert soup garlic bread cheese oven spicy dinner "
        "restaurant sauce bakery vegetables noodles butter chocolate menu"
    ),
}
TOPICS = {topic: words.split() for topic, words in TOPIC_WORDS.items()}
CLASSES: list[str] = list(TOPICS)
COMMON_WORDS = (
    "the a of and to in on with for at after before today new report says about from this "
    "that week people many more first last big small best good year time city world local "
    "could would will over under"
)
COMMON = COMMON_WORDS.split()
TOPIC_SHARE, OTHER_SHARE = 0.4, 0.1  # of a sentence's words; the rest are common words
LETTERS = "abcdefghijklmnopqrstuvwxyz"
PROBES = ["The final match", "Bank shares fell.", "x"]
JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array"}


def features(text: str, buckets: int, sizes: tuple[int, int] = (3, 5)) -> list[int]:
    """Bucket ids of a text's words, each followed by its character n-grams (of lengths
    ``sizes``, inclusive) with ``<`` and ``>`` marking the word's ends; lowercased and hashed
    with CRC-32 (stable across processes, unlike ``hash``).

    >>> tokens = ["hi", "<hi", "hi>", "<hi>"]
    >>> features("Hi!", buckets=1000) == [zlib.crc32(t.encode()) % 1000 for t in tokens]
    True
    >>> features("hi", 1000) == features(" HI ?", 1000), features("...", 1000)
    (True, [])
    """
    ids = []
    for word in re.findall(r"\w+", text.lower()):
        ids.append(_bucket(word, buckets))
        marked = f"<{word}>"
        for size in range(sizes[0], sizes[1] + 1):
            ids += [_bucket(marked[i : i + size], buckets) for i in range(len(marked) - size + 1)]
    return ids


def _bucket(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode()) % buckets


class Bags(NamedTuple):
    """Texts as the input of ``nn.EmbeddingBag``: their bucket ids end to end, and the offset
    at which each text's ids start."""

    ids: torch.Tensor
    offsets: torch.Tensor

    def pick(self, rows: torch.Tensor) -> Bags:
        """The texts at ``rows``, in that order.

        >>> bags = Bags(torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([0, 2, 3]))
        >>> picked = bags.pick(torch.tensor([2, 0]))
        >>> picked.ids.tolist(), picked.offsets.tolist()
        ([4, 5, 6, 1, 2], [0, 3])
        """
        ends = torch.cat([self.offsets[1:], self.offsets.new_tensor([len(self.ids)])])
        lengths = (ends - self.offsets)[rows]
        offsets = torch.cumsum(lengths, 0) - lengths
        shift = torch.repeat_interleave(self.offsets[rows] - offsets, lengths)
        return Bags(self.ids[shift + torch.arange(len(shift), device=shift.device)], offsets)


class TextNetwork(nn.Module):
    """The mean embedding of a text's buckets, then dropout, a ReLU hidden layer and a linear
    head.

    >>> network = TextNetwork(buckets=100, dim=4, hidden=8, n_classes=3, dropout=0.1)
    >>> network(torch.tensor([1, 2, 3]), torch.tensor([0, 2])).shape
    torch.Size([2, 3])
    """

    def __init__(self, buckets: int, dim: int, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.hidden = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids, offsets))

    def embed(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """The hidden layer ``[B, hidden]``."""
        return self.hidden(self.bag(ids, offsets))


class TextModel(StreamModel):
    """Texts as hashed words and character n-grams (`features`) through a `TextNetwork`,
    trained with Adam on cross-entropy, keeping the epoch with the lowest validation loss.

    >>> model = TextModel(["a", "b"], torch.device("cpu"), buckets=64, dim=4, hidden=8)
    >>> encoded = model.encode([Sample(id="x", payload="Hello"), Sample(id="y", payload=3)])
    >>> tuple(model.logits(encoded.inputs).shape), encoded.rejected
    ((1, 2), [(1, 'payload: expected a string (got number)')])
    """

    def __init__(
        self,
        classes: Sequence[str],
        device: torch.device,
        *,
        buckets: int = 2**14,
        dim: int = 16,
        hidden: int = 64,
        dropout: float = 0.2,
        field: str | None = None,
        max_chars: int = 2000,
        learning_rate: float = 1e-2,
        max_epochs: int = 30,
        patience: int = 3,
        batch_size: int = 32,
        min_steps: int = 10,
    ) -> None:
        for name, value in dict(
            buckets=buckets,
            dim=dim,
            hidden=hidden,
            max_chars=max_chars,
            max_epochs=max_epochs,
            patience=patience,
            batch_size=batch_size,
            min_steps=min_steps,
        ).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 (got {value})")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive (got {learning_rate})")
        self.classes = list(classes)
        self.device = device
        self.network: TextNetwork = TextNetwork(buckets, dim, hidden, len(self.classes), dropout)
        self.network.to(device).eval()
        self.buckets, self.field, self.max_chars = buckets, field, max_chars
        self.recipe = FitConfig(
            learning_rate=learning_rate, max_epochs=max_epochs, patience=patience,
            batch_size=batch_size, min_steps=min_steps,
        )  # fmt: skip

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        rows, kept, rejected = [], [], []
        for index, sample in enumerate(samples):
            try:
                rows.append(self._features(sample.payload))
            except ValueError as error:
                rejected.append((index, str(error)))
            else:
                kept.append(index)
        return Encoded(self._bags(rows), kept, rejected)

    def _features(self, payload: Any) -> list[int]:
        """The bucket ids of a payload's text (``ValueError`` with the reason if none)."""
        where = "payload"
        if self.field is not None:
            if not isinstance(payload, dict):
                kind = _json_type(payload)
                raise ValueError(
                    f"payload: expected an object with a {self.field!r} field (got {kind})"
                )
            where, payload = f"payload.{self.field}", payload.get(self.field)
        if not isinstance(payload, str):
            raise ValueError(f"{where}: expected a string (got {_json_type(payload)})")
        ids = features(payload[: self.max_chars], self.buckets)
        if not ids:
            raise ValueError(f"{where}: no words in the text")
        return ids

    def _bags(self, rows: list[list[int]]) -> Bags:
        """Bucket ids of texts as `Bags` on the model's device."""
        ids = torch.tensor([i for row in rows for i in row], dtype=torch.long)
        offsets = torch.tensor(np.cumsum([0] + [len(row) for row in rows[:-1]]) if rows else [])
        return Bags(ids.to(self.device), offsets.to(self.device, torch.long))

    def logits(self, inputs: Bags) -> torch.Tensor:
        return self.network(*inputs)

    def embed(self, inputs: Bags) -> torch.Tensor:
        return self.network.embed(*inputs)

    def stochastic_logits(self, inputs: Bags, passes: int) -> torch.Tensor:
        """All passes in one forward pass over the repeated mean embeddings."""
        bags = self.network.bag(*inputs).repeat(passes, 1)
        return self.network.head(self.network.hidden(bags)).reshape(passes, len(inputs.offsets), -1)

    def probe(self) -> Bags:
        """A few fixed texts, down to a single letter."""
        return self._bags([features(text, self.buckets) for text in PROBES])

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        """Adam on cross-entropy in shuffled mini-batches (an epoch takes at least
        ``min_steps`` of them), keeping the epoch with the lowest validation loss and stopping
        after ``patience`` epochs without one; starts from ``start``'s weights when given."""
        x_train, y_train = self._tensors(train)
        x_val, y_val = self._tensors(validation)
        if start is not None:
            self.load_state_dict(start.state_dict())
        train_network(self.network, (x_train, y_train), (x_val, y_val), self.recipe, self.logits)

    def _tensors(self, labeled: Labeled) -> tuple[Bags, torch.Tensor]:
        """Bags and targets of the samples the model reads."""
        encoded = self.encode(labeled.samples)
        targets = torch.as_tensor(labeled.targets[encoded.kept], device=self.device)
        return encoded.inputs, targets


def model(classes: Sequence[str], device: torch.device, **options: Any) -> TextModel:
    """The factory for ``model.factory: streamal.examples.text:model``.

    Options (``model.options``), with their defaults:

    - ``buckets`` (16384): hash buckets of words and character n-grams; ``dim`` (16): their
      embedding size; ``hidden`` (64): the hidden layer, which is the embedding of a text;
      ``dropout`` (0.2): on the mean embedding, also switched on for MC-dropout scores;
    - ``field`` (none): read the text from this field of an object payload instead of a string
      payload; ``max_chars`` (2000): read at most this many characters of a text;
    - ``learning_rate`` (0.01), ``max_epochs`` (30), ``patience`` (3), ``batch_size`` (32),
      ``min_steps`` (10): the training recipe (see `TextModel.fit`).

    >>> model(CLASSES, torch.device("cpu")).network.head.out_features
    5
    """
    return TextModel(classes, device, **options)


def stream(
    n: int, seed: int = 0, typo_rate: float = 0.08, label_noise: float = 0.03
) -> tuple[list[Sample], list[str]]:
    """``n`` short sentences with their topics (`CLASSES`), the same for a seed.

    A sentence has 5 to 20 words: each one of its topic's words with probability
    ``TOPIC_SHARE``, of another topic's with ``OTHER_SHARE``, else a common word, and with
    probability ``typo_rate`` misspelt (a letter dropped, changed or added). A share
    ``label_noise`` of the labels is another topic's (drawn from a generator of its own, so
    the sentences do not depend on it).

    >>> samples, labels = stream(2, seed=1)
    >>> [sample.id for sample in samples], labels
    (['text-1-0', 'text-1-1'], ['sports', 'travel'])
    >>> samples[0].payload  # doctest: +ELLIPSIS
    'On team city champion toda for time striker coach flight hotel ...'
    """
    texts, noise = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    topics = texts.integers(len(CLASSES), size=n)
    samples = [
        Sample(id=f"text-{seed}-{i}", payload=_sentence(texts, int(topic), typo_rate))
        for i, topic in enumerate(topics)
    ]
    shifts = noise.integers(1, len(CLASSES), size=n) * (noise.random(n) < label_noise)
    return samples, [CLASSES[i] for i in (topics + shifts) % len(CLASSES)]


def _sentence(rng: np.random.Generator, topic: int, typo_rate: float) -> str:
    words = []
    for _ in range(rng.integers(5, 21)):
        draw = rng.random()
        if draw < TOPIC_SHARE:
            vocabulary = TOPICS[CLASSES[topic]]
        elif draw < TOPIC_SHARE + OTHER_SHARE:
            vocabulary = TOPICS[CLASSES[(topic + rng.integers(1, len(CLASSES))) % len(CLASSES)]]
        else:
            vocabulary = COMMON
        word = vocabulary[rng.integers(len(vocabulary))]
        words.append(_typo(rng, word) if rng.random() < typo_rate else word)
    return " ".join(words).capitalize() + "."


def _typo(rng: np.random.Generator, word: str) -> str:
    """``word`` with one letter dropped (if it has more than one), changed or added."""
    at, letter = int(rng.integers(len(word))), LETTERS[rng.integers(len(LETTERS))]
    edit = rng.integers(3) if len(word) > 1 else rng.integers(1, 3)
    if edit == 0:
        return word[:at] + word[at + 1 :]
    if edit == 1:
        return word[:at] + letter + word[at + 1 :]
    return word[:at] + letter + word[at:]


def _json_type(value: Any) -> str:
    """The JSON name of a payload's type.

    >>> _json_type(None), _json_type({"a": 1}), _json_type(2.5)
    ('null', 'object', 'number')
    """
    if value is None:
        return "null"
    return "object" if isinstance(value, dict) else JSON_TYPES.get(type(value), "string")
