"""Readers of the benchmarks' on-disk formats: Ref-YouTube-VOS, MeViS, Ref-DAVIS17, RefCOCO/+/g.

Each video reader returns a :class:`ReferringDataset` to iterate as videos -> expressions ->
frames; ground-truth masks are decoded lazily through each expression's ``masks`` source.
"""
from .mevis import load_mevis
from .ref_davis17 import load_ref_davis17
from .ref_youtube_vos import load_ref_youtube_vos
from .refcoco import ReferringImageSample, load_refcoco
from .types import (
    MaskSource,
    PaletteMaskSource,
    ReferringDataset,
    ReferringSample,
    ReferringVideo,
    load_masks,
    read_frame,
)

__all__ = [
    "MaskSource",
    "PaletteMaskSource",
    "ReferringDataset",
    "ReferringImageSample",
    "ReferringSample",
    "ReferringVideo",
    "load_masks",
    "load_mevis",
    "load_ref_davis17",
    "load_ref_youtube_vos",
    "load_refcoco",
    "read_frame",
]
