"""A synthetic referring-video benchmark: clips of moving shapes with checked expressions.

Each clip holds 2-5 objects (shapes, colours, sizes, textures) on a plain, gradient or noise
background, moving left/right/up/down, standing still, bouncing, entering late or leaving the
frame, occluding each other. Its expressions -- of type appearance ("the red circle"), relation
("the square left of the triangle"), motion ("the shape moving up") or time ("the circle that
appears later") -- each single out exactly one object. The pipeline, one file per step::

    attributes -> scene (shapes, background, motion) -> render -> facts -> expressions -> clip -> writer / reader

Datasets are written in the Ref-YouTube-VOS format (see :mod:`.writer`), so the benchmark readers,
the trainer and the evaluator serve real and synthetic data alike::

    python -m mpg_sam2.data.synthetic --out data/synthetic --seed 0 --train 400 --val 50 --test 50
"""
from .attributes import COLOURS, EXPRESSION_TYPES, MOTIONS, SHAPES, SIZES, TEXTURES
from .clip import SyntheticClip, generate_clip
from .expressions import TEMPLATES, Expression, Template, vocabulary
from .reader import load_synthetic, read_expression_types, read_object_attributes, read_phrase_needed
from .writer import GENERATOR_VERSION, SPLITS, Progress, clip_rng, iter_write_dataset, video_id, write_dataset

__all__ = [
    "COLOURS",
    "EXPRESSION_TYPES",
    "Expression",
    "GENERATOR_VERSION",
    "MOTIONS",
    "Progress",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "SyntheticClip",
    "TEMPLATES",
    "TEXTURES",
    "Template",
    "clip_rng",
    "generate_clip",
    "iter_write_dataset",
    "load_synthetic",
    "read_expression_types",
    "read_object_attributes",
    "read_phrase_needed",
    "video_id",
    "vocabulary",
    "write_dataset",
]
