"""Selection via proxy (Coleman et al., ICLR 2020): a small, fast model scores and selects the
pool, and the target model is trained on what it selected.

The proxy is any `streamal.model.StreamModel`: the ``model`` section with ``pool.proxy``'s
fields replaced (by default the MLP with one hidden layer of 16), a user's module or factory
included. ``pool select --proxy fit`` trains a fresh proxy on the label store's labels right
before it scores (the paper's way: each round retrains the proxy, which costs little);
``--proxy latest`` or ``--proxy PATH`` loads a stored one, as ``--model`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import ValidationError

from streamal.config import Settings
from streamal.errors import ConfigError
from streamal.messages import Sample
from streamal.model import Labeled, Predictor
from streamal.model.config import ModelConfig
from streamal.model.factory import model_factory
from streamal.pool.job import NoModel, load_model
from streamal.training.fit import fit
from streamal.validation import one_line

__all__ = ["FIT", "fit_proxy", "labeled_targets", "load_proxy", "proxy_model"]

FIT = "fit"
"""``--proxy fit``: train the proxy on the labeled items now."""


def proxy_model(settings: Settings) -> ModelConfig:
    """The proxy's model settings: ``model`` with the fields of ``pool.proxy``; a combination
    that does not validate is a one-line `ConfigError` naming ``pool.proxy``.

    >>> proxy_model(Settings(model={"hidden": [256, 256]})).hidden
    [16]
    >>> proxy_model(Settings(pool={"proxy": {"options": {"k": 1}}}))
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: config error: pool.proxy: options are passed to \
model.factory: set it, or remove options
    """
    fields = {**settings.model.model_dump(), **settings.pool.proxy.model_dump()}
    try:
        return ModelConfig.model_validate(fields)
    except ValidationError as error:
        problem = one_line(error, ModelConfig).removeprefix(": ")
        raise ConfigError(f"config error: pool.proxy: {problem}") from None


def labeled_targets(
    samples: Sequence[Sample], labels: Sequence[str], classes: list[str]
) -> Labeled:
    """Labeled samples with their labels as class indices.

    >>> labeled_targets([Sample(id="x", features=[0.0])], ["b"], ["a", "b"]).targets.tolist()
    [1]
    """
    index = {name: i for i, name in enumerate(classes)}
    return Labeled(list(samples), np.array([index[label] for label in labels], dtype=np.int64))


def fit_proxy(
    config: ModelConfig, labeled: Labeled, validation_share: float, seed: int
) -> Predictor:
    """A fresh proxy of ``config`` trained on ``labeled`` (held-out share as the trainer's)."""
    result = fit(model_factory(config), labeled, validation_share, None, seed)
    if result is None:
        raise NoModel(
            "--proxy fit trains the proxy on labeled items: the label store has none it reads"
        )
    return Predictor(result.challenger, 0)


def load_proxy(settings: Settings, which: str, labeled: Labeled | None) -> Predictor:
    """The proxy ``which`` names: `FIT` trains one on ``labeled``; ``latest`` or a path loads a
    stored version of the proxy model, verified like ``--model``."""
    config = proxy_model(settings)
    if which == FIT:
        return fit_proxy(
            config, labeled or Labeled([], np.empty(0, dtype=np.int64)),
            settings.train.validation_share, settings.strategy.seed,
        )  # fmt: skip
    return load_model(settings.model_copy(update={"model": config}), which)
