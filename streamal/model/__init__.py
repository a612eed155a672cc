"""The model side: the model contract (`StreamModel`), the default model, a predictor of a
version, the versioned model store, and the loader that turns a stored version into a verified
predictor."""

from streamal.model.committee import Committee
from streamal.model.config import FitConfig, ModelConfig
from streamal.model.contract import Encoded, Labeled, StreamModel
from streamal.model.default import FeatureModel
from streamal.model.factory import ModelFactory, frozen, model_factory, pick_device
from streamal.model.loader import ModelLoader
from streamal.model.mlp import MLP
from streamal.model.predictor import Predictor
from streamal.model.store import Checkpoint, ModelStore

__all__ = [
    "MLP",
    "Checkpoint",
    "Committee",
    "Encoded",
    "FeatureModel",
    "FitConfig",
    "Labeled",
    "ModelConfig",
    "ModelFactory",
    "ModelLoader",
    "ModelStore",
    "Predictor",
    "StreamModel",
    "frozen",
    "model_factory",
    "pick_device",
]
