"""Dataset adapters. Every adapter yields :class:`Sample` objects with the image at its
source resolution; :func:`prepare` resizes a sample to the model's input size."""

from .base import Box, Dataset, PreparedBatch, Sample, object_mask, prepare_batch
from .imagefolder import ImageFolderDataset
from .manifest import ManifestDataset
from .spec import DatasetSpec, open_dataset

__all__ = [
    "Box", "Dataset", "PreparedBatch", "Sample", "object_mask", "prepare_batch",
    "ImageFolderDataset", "ManifestDataset", "DatasetSpec", "open_dataset",
]
