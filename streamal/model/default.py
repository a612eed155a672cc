"""The default model: ``Sample.features`` (or a featurizer's rows for payloads) through the MLP
(or a user's torch module), trained with Adam and early stopping on the held-out labels."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from streamal.messages import Sample
from streamal.model.config import FitConfig, ModelConfig
from streamal.model.contract import Encoded, Labeled, StreamModel, arrival_order
from streamal.model.features import Featurizer
from streamal.model.mlp import MLP
from streamal.plugins import load_function


def build_network(config: ModelConfig) -> nn.Module:
    """A fresh, untrained network: the user's (``model.module``) or the default MLP."""
    if config.module:
        make = load_function(config.module, "model.module")
        module = make(config.n_features, len(config.classes))
        if not isinstance(module, nn.Module):
            raise TypeError(f"{config.module} returned {type(module).__name__}, not a torch module")
        return module
    return MLP(
        config.n_features, len(config.classes), config.hidden, config.dropout, config.online,
        config.neighbors, config.memory, config.kalman,
    )  # fmt: skip


class FeatureModel(StreamModel):
    """Float rows ``[B, n_features]`` through a torch module.

    >>> model = FeatureModel(ModelConfig(n_features=2, classes=["a", "b"], hidden=[8]))
    >>> encoded = model.encode([Sample(id="x", features=[1, 2]), Sample(id="y", features=[1])])
    >>> tuple(model.logits(encoded.inputs).shape), encoded.rejected
    ((1, 2), [(1, 'features: expected 2 values (got 1)')])
    """

    def __init__(self, config: ModelConfig, device: torch.device | None = None) -> None:
        self.classes = list(config.classes)
        self.device = device or torch.device("cpu")
        self.network = build_network(config).to(self.device).eval()
        self._featurize = Featurizer(config)
        self._width = config.n_features
        self._recipe = config.fit

    @property
    def has_embeddings(self) -> bool:
        """Whether the network defines ``embed`` (the MLP does; a user's module may not)."""
        return callable(getattr(self.network, "embed", None))

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        featurized = self._featurize(samples)
        return Encoded(self.tensor(featurized.matrix), featurized.kept, featurized.rejected)

    def tensor(self, matrix: np.ndarray) -> torch.Tensor:
        """A float32 feature matrix on the model's device."""
        tensor = torch.as_tensor(matrix, dtype=torch.float32)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return cast(Any, self.network).embed(inputs)

    def rounds_logits(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The MLP's own logits when it has online parts (None: it has none)."""
        network = self.network
        return network.deep(inputs) if isinstance(network, MLP) and network.blended else None

    def stochastic_logits(self, inputs: torch.Tensor, passes: int) -> torch.Tensor:
        """All passes in one batched forward pass."""
        return self.network(inputs.repeat(passes, 1)).reshape(passes, inputs.shape[0], -1)

    def probe(self) -> torch.Tensor:
        """Rows of zeros, ones and minus ones."""
        return self.tensor(np.repeat(np.array([[0.0], [1.0], [-1.0]]), self._width, axis=1))

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        """Adam on cross-entropy, keeping the epoch with the lowest validation loss.

        Starts from ``start``'s weights when given; the MLP's input scaling is fitted anew on
        the training features either way (one outlier cannot set it, see
        `winsorized_standard_scaling`), keeping the warm-started function. The MLP's online
        parts and memory, if any (``model.online``, ``model.neighbors``, ``model.kalman``),
        learn anew, once, in the order they came, every label: ``validation`` too when both
        parts say where their labels came (`arrival_order`), since they `follow` the held-out
        labels as well (after a drift, the labels start at the new concept).
        """
        recipe = self._recipe
        x_train, y_train = self._tensors(train)
        x_val, y_val = self._tensors(validation)
        if start is not None:
            self.load_state_dict(start.state_dict())
        if not isinstance(self.network, MLP):
            train_network(self.network, (x_train, y_train), (x_val, y_val), recipe)
            return
        # the scaling is refitted each round: no old outlier is inherited
        self.network.fit_scaling(x_train.cpu().numpy(), keep_function=start is not None)
        order = None if validation is train else arrival_order(train, validation)
        if order is None:
            self.network.relearn(x_train, y_train)
        else:
            every = torch.as_tensor(order, device=self.device)
            self.network.relearn(
                torch.cat([x_train, x_val])[every], torch.cat([y_train, y_val])[every]
            )
        train_network(self.network, (x_train, y_train), (x_val, y_val), recipe, self.network.deep)

    def follow(self, held_out: Labeled) -> bool:
        """The MLP's online parts and memory, if any, learn ``held_out`` (weighed first, as in
        `update`); the MLP itself does not."""
        return bool(len(held_out)) and self._learn_label_by_label(*self._tensors(held_out))

    def _learn_label_by_label(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """The MLP weighs its parts by how they predict ``x``, ``y``, then its online parts and
        memory learn them, in order; False (and nothing learned) without such parts."""
        network = self.network
        if not (isinstance(network, MLP) and network.blended):
            return False
        network.weigh(x, y, self._recipe.blend_memory)
        network.learn(x, y)
        return True

    def update(self, new: Labeled, replay: Labeled) -> bool:
        """``model.fit.update_steps`` Adam steps, each on every new label and a random fill of
        replayed ones up to a batch; the input scaling is kept. With online parts, the MLP first
        weighs its parts by how they predict the new labels, then its online parts learn them,
        in order.
        """
        recipe = self._recipe
        x_new, y_new = self._tensors(new)
        x_old, y_old = self._tensors(replay)
        deep: Callable[[torch.Tensor], torch.Tensor] = self.network
        self._learn_label_by_label(x_new, y_new)
        if isinstance(self.network, MLP):
            deep = self.network.deep
        fill = max(0, recipe.batch_size - len(y_new))
        optimizer = torch.optim.Adam(self.network.parameters(), lr=recipe.learning_rate)
        loss_of = nn.CrossEntropyLoss()
        self.network.train()
        for _ in range(recipe.update_steps):
            pick = torch.randperm(len(y_old))[:fill].to(self.device)
            optimizer.zero_grad()
            inputs, targets = torch.cat([x_new, x_old[pick]]), torch.cat([y_new, y_old[pick]])
            loss_of(deep(inputs), targets).backward()
            optimizer.step()
        self.network.eval()
        return True

    def _tensors(self, labeled: Labeled) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and targets (the trainer passes only samples the model reads)."""
        inputs = self.encode(labeled.samples).inputs
        return inputs, torch.as_tensor(labeled.targets, device=self.device)


def train_network(
    network: nn.Module,
    train: tuple[Any, torch.Tensor],
    validation: tuple[Any, torch.Tensor],
    recipe: FitConfig,
    forward: Callable[[Any], torch.Tensor] | None = None,
) -> None:
    """Train ``network`` on (inputs, class indices) with Adam on cross-entropy in shuffled
    mini-batches, and keep the epoch with the lowest ``validation`` loss (early stopping after
    ``recipe.patience`` epochs without improvement); leaves the network in eval mode.

    The inputs are a tensor indexed by rows, or anything with a ``pick(rows)`` method (e.g.
    texts as bags of ids); ``forward`` turns them into logits (by default ``network`` itself).
    """
    (x_train, y_train), (x_val, y_val) = train, validation
    forward = forward or network
    pick = getattr(x_train, "pick", x_train.__getitem__)
    optimizer = torch.optim.Adam(network.parameters(), lr=recipe.learning_rate)
    loss_of = nn.CrossEntropyLoss()
    best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
    for _ in range(recipe.max_epochs):
        network.train()
        for batch in _batches(len(y_train), recipe.batch_size, recipe.min_steps):
            optimizer.zero_grad()
            loss_of(forward(pick(batch)), y_train[batch]).backward()
            optimizer.step()
        network.eval()
        with torch.inference_mode():
            loss = float(loss_of(forward(x_val), y_val))
        if loss < best_loss - 1e-4:
            best_loss, best_state, stale = loss, copy.deepcopy(network.state_dict()), 0
        else:
            stale += 1
            if stale >= recipe.patience:
                break
    network.load_state_dict(best_state)


def _batches(size: int, batch_size: int, min_steps: int) -> list[torch.Tensor]:
    """One epoch's batches: a shuffled pass over ``size`` items, repeated until it makes at
    least ``min_steps`` batches (a few labels still move the model, e.g. after a drift).

    >>> [len(b) for b in _batches(10, 4, 5)]
    [4, 4, 2, 4, 4, 2]
    """
    batches: list[torch.Tensor] = []
    while len(batches) < min_steps:
        batches += list(torch.randperm(size).split(batch_size))
    return batches
