"""The model side: the default MLP, a batched predictor, and the versioned model store."""

from streamal.model.config import ModelConfig
from streamal.model.mlp import MLP
from streamal.model.predictor import Predictor, build_module, pick_device
from streamal.model.store import Checkpoint, ModelStore, load_weights

__all__ = [
    "MLP",
    "Checkpoint",
    "ModelConfig",
    "ModelStore",
    "Predictor",
    "build_module",
    "load_weights",
    "pick_device",
]
