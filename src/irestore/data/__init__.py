"""Datasets: the layouts users bring (GoPro, Rain100, SOTS, ...), paired and clean-photo folders,
and the torch Dataset that turns them into training samples."""

from irestore.data.datasets import RestorationDataset, build_dataset
from irestore.data.layouts import (
    LAYOUTS,
    DatasetError,
    Layout,
    Pair,
    VerifyReport,
    find_pairs,
    list_layouts,
    verify_layout,
)

__all__ = [
    "LAYOUTS",
    "DatasetError",
    "Layout",
    "Pair",
    "RestorationDataset",
    "VerifyReport",
    "build_dataset",
    "find_pairs",
    "list_layouts",
    "verify_layout",
]
