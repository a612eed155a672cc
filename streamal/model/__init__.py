"""The model side: the default MLP, a batched predictor, the versioned model store, and the
loader that turns a stored version into a verified predictor."""

from streamal.model.config import ModelConfig
from streamal.model.loader import ModelLoader
from streamal.model.mlp import MLP
from streamal.model.predictor import Predictor, build_module, pick_device
from streamal.model.store import Checkpoint, ModelStore

__all__ = [
    "MLP",
    "Checkpoint",
    "ModelConfig",
    "ModelLoader",
    "ModelStore",
    "Predictor",
    "build_module",
    "pick_device",
]
