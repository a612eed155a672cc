"""Expected gradient length of a softmax last layer."""

from __future__ import annotations

import numpy as np
import torch

from streamal.strategies.edge import as_float_tensor, check_shape, numpy_edge

__all__ = ["expected_gradient_length"]


@numpy_edge
def expected_gradient_length(
    probs: torch.Tensor, *, embeddings: torch.Tensor | np.ndarray, bias: bool = True
) -> torch.Tensor:
    """The cross-entropy gradient norm of the last layer, expected over the predicted labels.

    For a softmax layer on penultimate embedding ``h`` the gradient for label ``y`` is
    ``(p - e_y) h^T`` (and ``p - e_y`` for the bias), so its norm is
    ``||p - e_y|| * sqrt(||h||^2 + 1)``; the score is its mean under ``p``.

    Parameters
    ----------
    embeddings
        Penultimate activations ``[B, D]``, the last layer's inputs.
    bias
        Whether the last layer has a bias, whose gradient counts too.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.5, 0.5]])
    >>> h = np.array([[3.0, 4.0], [3.0, 4.0]])
    >>> expected_gradient_length(p, embeddings=h, bias=False).round(4)
    array([0.    , 3.5355])
    """
    check_shape(probs, 2, "probs")
    h = as_float_tensor(embeddings, probs.device).to(probs.dtype)
    check_shape(h, 2, "embeddings")
    if h.shape[0] != probs.shape[0]:
        raise ValueError(f"embeddings have {h.shape[0]} rows, probs {probs.shape[0]}")
    # ||p - e_y||^2 = ||p||^2 - 2 p_y + 1, for every label y at once
    residual = ((probs**2).sum(dim=-1, keepdim=True) - 2 * probs + 1).clamp(min=0.0).sqrt()
    h_norm = (h.square().sum(dim=-1) + float(bias)).sqrt()
    return (probs * residual).sum(dim=-1) * h_norm
