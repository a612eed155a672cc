"""A committee: ``K`` models of the configured kind, each trained on its own bootstrap sample of
the labels with its own seed, served as one `StreamModel` (``model.committee: K``).

Its `Committee.logits` are the consensus (the mean of the members' probabilities), and its
`Committee.stochastic_logits` are the members' own logits ``[K, B, C]``, one vote each with
dropout off: the pass scores (``vote_entropy``, ``consensus_kl``, ``max_disagreement``,
``bald``, ``variation_ratio``) then measure how far members trained apart disagree (query by
committee, Seung et al. 1992; bagging, Abe and Mamitsuka 1998), and serve, train, pool and the
simulation get it through the model contract alone. A checkpoint holds every member's state,
under the prefix ``member<k>.``.

Cost, per ``K``: training, incremental updates, the checkpoint and the forward pass of every
sample each take ``K`` times one model's (`benchmarks/committee.py` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from streamal.messages import Sample
from streamal.model.contract import Encoded, Labeled, StreamModel


class Committee(StreamModel):
    """``members`` (fresh models of one kind and classes) as one model.

    >>> from streamal.model.config import ModelConfig
    >>> from streamal.model.default import FeatureModel
    >>> config = ModelConfig(n_features=2, classes=["a", "b"], hidden=[8])
    >>> committee = Committee([FeatureModel(config) for _ in range(3)])
    >>> inputs = committee.encode([Sample(id="x", features=[1, 2])]).inputs
    >>> tuple(committee.stochastic_logits(inputs, passes=20).shape)
    (3, 1, 2)
    >>> sorted({name.split(".")[0] for name in committee.state_dict()})
    ['member0', 'member1', 'member2']
    """

    def __init__(self, members: Sequence[StreamModel]) -> None:
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members (got {len(members)})")
        first = members[0]
        self.members = list(members)
        self.classes = list(first.classes)
        self.device = first.device
        self.network = nn.ModuleList([member.network for member in self.members])

    @property
    def has_embeddings(self) -> bool:
        """Whether the members give embeddings."""
        return self.members[0].has_embeddings

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        """The members' input (one kind of model reads samples one way)."""
        return self.members[0].encode(samples)

    def logits(self, inputs: Any) -> torch.Tensor:
        """The consensus: log of the mean of the members' probabilities, ``[B, C]``."""
        votes = torch.stack([member.logits(inputs) for member in self.members])
        return torch.logsumexp(torch.log_softmax(votes, dim=-1), dim=0) - math.log(len(votes))

    def stochastic_logits(self, inputs: Any, passes: int) -> torch.Tensor:
        """The members' logits ``[K, B, C]`` whatever ``passes``: one vote each, with dropout
        off, so that the disagreement is the members' own."""
        self.network.eval()
        return torch.stack([member.logits(inputs) for member in self.members])

    def embed(self, inputs: Any) -> torch.Tensor:
        """The members' representations side by side, ``[B, K * H]``."""
        return torch.cat([member.embed(inputs) for member in self.members], dim=1)

    def probe(self) -> Any | None:
        return self.members[0].probe()

    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        """Each member fits a bootstrap sample of ``train`` (as many draws, with replacement)
        with its own seed, warm-started from the same member of ``start`` (a committee of
        the same size; anything else is a start from scratch); ``validation`` is shared."""
        seeds = self._seeds()
        starts = start.members if isinstance(start, Committee) else None
        if starts is not None and len(starts) != len(self.members):
            starts = None
        for k, member in enumerate(self.members):
            draws = np.random.default_rng(seeds[k])
            torch.manual_seed(seeds[k])
            member.fit(
                _rows(train, draws.integers(0, len(train), len(train))),
                validation,
                None if starts is None else starts[k],
            )
        self.network.eval()

    def follow(self, held_out: Labeled) -> bool:
        """Every member follows ``held_out``; True if any changed."""
        followed = [member.follow(held_out) for member in self.members]
        return any(followed)

    def update(self, new: Labeled, replay: Labeled) -> bool:
        """Online bagging (Oza and Russell 2001): each member learns each new label a
        Poisson(1) number of times (drawn again in the rare case that no member would learn
        any), with its own bootstrap of ``replay``; True if any member changed."""
        seeds = self._seeds()
        counts = np.zeros((len(self.members), len(new)), dtype=np.int64)
        draws = np.random.default_rng(seeds)
        while len(new) and not counts.any():
            counts = draws.poisson(1.0, counts.shape)
        changed = False
        for k, member in enumerate(self.members):
            mine = np.repeat(np.arange(len(new)), counts[k])
            if not len(mine):
                continue
            torch.manual_seed(seeds[k])
            replayed = _rows(replay, draws.integers(0, max(1, len(replay)), len(replay)))
            changed |= member.update(_rows(new, mine), replayed)
        self.network.eval()
        return changed

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every member's state, its names prefixed ``member<k>.``."""
        return {
            f"member{k}.{name}": tensor
            for k, member in enumerate(self.members)
            for name, tensor in member.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Each member takes its part of ``state``; a state of another size or kind is refused
        (``KeyError`` naming an unexpected tensor, or the member's own error)."""
        parts: list[dict[str, torch.Tensor]] = [{} for _ in self.members]
        for name, tensor in state.items():
            prefix, _, rest = name.partition(".")
            k = prefix.removeprefix("member")
            if not (prefix.startswith("member") and k.isdigit() and int(k) < len(parts)):
                raise KeyError(f"unexpected tensor {name!r} for a committee of {len(parts)}")
            parts[int(k)][rest] = tensor
        for member, part in zip(self.members, parts, strict=True):
            member.load_state_dict(part)

    def _seeds(self) -> list[int]:
        """One seed per member, drawn from torch's generator (which the trainer seeds)."""
        return [int(seed) for seed in torch.randint(0, 2**31 - 1, (len(self.members),))]


def _rows(labeled: Labeled, rows: np.ndarray) -> Labeled:
    """The labeled samples at ``rows`` (repeats allowed), in that order."""
    return Labeled([labeled.samples[i] for i in rows], labeled.targets[rows])
