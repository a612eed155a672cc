"""The public edge of the scores: torch on any device inside, numpy accepted and returned."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
import torch

P = ParamSpec("P")
Array = TypeVar("Array", torch.Tensor, np.ndarray)


def as_float_tensor(
    x: torch.Tensor | np.ndarray, device: torch.device | None = None
) -> torch.Tensor:
    """``x`` as a floating-point tensor; integers become float64, floats keep their precision.

    Examples
    --------
    >>> as_float_tensor(np.array([[1, 0]])).dtype
    torch.float64
    """
    tensor = torch.as_tensor(x, device=device)
    return tensor if tensor.is_floating_point() else tensor.to(torch.float64)


def check_shape(tensor: torch.Tensor, ndim: int, name: str, *, min_classes: int = 1) -> None:
    """Raise ``ValueError`` unless ``tensor`` has ``ndim`` dimensions and enough classes."""
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] < min_classes:
        raise ValueError(f"{name} needs at least {min_classes} classes, got {tensor.shape[-1]}")


def numpy_edge(
    fn: Callable[Concatenate[torch.Tensor, P], torch.Tensor],
) -> Callable[Concatenate[Array, P], Array]:
    """Let a scoring function of a tensor take a numpy array and answer with one.

    A tensor stays a tensor on its device; a numpy array is scored on the CPU.
    """

    @functools.wraps(fn)
    def wrapper(probs: Array, /, *args: P.args, **kwargs: P.kwargs) -> Array:
        result = fn(as_float_tensor(probs), *args, **kwargs)
        return result if isinstance(probs, torch.Tensor) else result.cpu().numpy()

    return wrapper
