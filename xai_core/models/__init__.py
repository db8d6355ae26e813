"""Model adapters: load a user's classifier and wrap it so that every explainer and metric
works in one space: (N, 3, H, W) float32 pixel values in [0, 1] at the declared input size."""

from .handle import ClassifierHandle, PixelSpaceModel
from .loading import ModelSpec, load_model

__all__ = ["ClassifierHandle", "PixelSpaceModel", "ModelSpec", "load_model"]
