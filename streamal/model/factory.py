"""Fresh models of the configured kind: the default `FeatureModel`, or a user's `StreamModel`
from ``model.factory``; and a per-process cache for the frozen parts they share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from streamal.errors import ConfigError, first_line
from streamal.model.committee import Committee
from streamal.model.config import ModelConfig
from streamal.model.contract import StreamModel
from streamal.model.default import FeatureModel
from streamal.plugins import load_function

ModelFactory = Callable[[], StreamModel]


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when asked for, or when ``auto`` and a GPU is present; else the CPU."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def model_factory(config: ModelConfig) -> ModelFactory:
    """A function giving a fresh, untrained model each call, on the configured device.

    A user's factory is loaded (a one-line `ConfigError` naming ``model.factory`` if it cannot
    be) and called as ``factory(classes=..., device=..., **model.options)``; what it returns
    must be a `StreamModel` of the configured classes. With ``model.committee`` K > 1, each
    fresh model is a `Committee` of K such models.
    """
    single = _single_factory(config)
    if config.committee > 1:
        return lambda: Committee([single() for _ in range(config.committee)])
    return single


def _single_factory(config: ModelConfig) -> ModelFactory:
    device = pick_device(config.device)
    if not config.factory:
        return lambda: FeatureModel(config, device)
    make = load_function(config.factory, "model.factory")
    path = config.factory

    def fresh() -> StreamModel:
        try:
            model = make(classes=list(config.classes), device=device, **config.options)
        except Exception as error:  # the user's code: say where it failed, in one line
            raise ConfigError(
                f"config error: model.factory: {path} failed: {type(error).__name__}: "
                f"{first_line(error)}"
            ) from None
        if not isinstance(model, StreamModel):
            raise ConfigError(
                f"config error: model.factory: {path} returned {type(model).__name__}, "
                "not a streamal.model.StreamModel"
            )
        if list(model.classes) != list(config.classes):
            raise ConfigError(
                f"config error: model.factory: {path} made a model of classes "
                f"{model.classes}, not model.classes {config.classes}"
            )
        return model

    return fresh


def frozen(path: Path | str, make: Callable[[], nn.Module], device: torch.device) -> nn.Module:
    """The pretrained module ``make()`` with the weights saved at ``path`` (a ``state_dict``,
    loaded with ``weights_only=True``), frozen and in eval mode on ``device``: loaded once per
    process and shared by every version of the model, so that checkpoints hold only what is
    trained. Pass a module-level ``make`` (a class or function): it is part of the cache key.

    >>> import tempfile
    >>> def backbone():
    ...     return nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     torch.save(nn.Linear(3, 2).state_dict(), f"{folder}/backbone.pt")
    ...     first = frozen(f"{folder}/backbone.pt", backbone, torch.device("cpu"))
    ...     again = frozen(f"{folder}/backbone.pt", backbone, torch.device("cpu"))
    >>> first is again, any(p.requires_grad for p in first.parameters()), first.training
    (True, False, False)
    """
    return _frozen(str(Path(path).resolve()), make, str(device))


@functools.cache
def _frozen(path: str, make: Callable[[], nn.Module], device: str) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = make()
        module.load_state_dict(state, strict=True)
    except Exception as error:
        raise ConfigError(f"config error: frozen backbone {path}: {first_line(error)}") from None
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.to(device).eval()
