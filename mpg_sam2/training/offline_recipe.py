"""The recipe of the bundled offline model: data, warm-up stages, training settings, ablation rows.

Plain data, read by :mod:`mpg_sam2.training.offline_model` (which runs it) and
:mod:`mpg_sam2.training.offline_card` (which writes it into ``evaluation.json`` and the model
card); the bundled model's ``evaluation.json`` records the values it was built with.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ABLATIONS", "CLICK_STAGE", "DATA", "EVALUATION_CLICKS", "RECIPE", "REGRESSION_SET", "WARMUP_STAGES"]

# The benchmark the model is trained and tested on.
DATA = {"seed": 0, "train": 400, "val": 40, "test": 60}
# A second, small test split (other seed: clips the model never saw) for the CI regression test.
REGRESSION_SET = {"seed": 1, "test": 12}
# Warm-up settings (python -m mpg_sam2.training.prior_warmup flags), from random weights: batches
# of 4 whole videos (every expression of a video on the same 2 frames, so a prior that ignores the
# caption can fit only one of them). A later stage continues from the one before (--init-from)
# with a fresh optimizer; its seed gives it a new data order.
WARMUP_STAGES: list[dict[str, Any]] = [{
    "dataset": "synthetic",
    "preset": "nano",
    "steps": 1900,
    "batch_size": 4,
    "frames": 2,
    "lr": 5e-4,
    "weight_decay": 5e-4,
    "grad_clip": 1.0,
    "seed": 0,
    "by_video": True,
    "threads": 2,
    "val_every": 100,
    "val_expressions": 40,
}]
# Training settings (python -m mpg_sam2 train flags), from the warm-up checkpoint. SAM 2 starts
# from random weights, so its image encoder trains too and the object-score and prior losses are on.
RECIPE: dict[str, Any] = {
    "dataset": "synthetic",
    "preset": "nano",
    "frames": 4,
    "train_image_encoder": True,
    "lr": 2e-4,
    "lr_fusion": 2e-4,
    "object_score_loss": 1.0,
    "prior_loss": 1.0,
    "seed": 0,
    "threads": 1,
    "val_every": 500,
    "val_expressions": 40,
    "save_every": 500,
    "keep_last": 40,
    "log_every": 100,
}
# Click fine-tuning (offline_model --click-steps N), from the selected checkpoint of the training
# above: the same recipe, but every clip has one frame corrected by 2 simulated clicks
# (mpg_sam2.training.click_training); the model's point embeddings were never trained before.
# Measured (test split, J&F after 0 / 1 / 2 / 3 simulated clicks): 1500 steps of this stage gave
# 0.417 / 0.418 / 0.419 / 0.419; 900 steps with half the clips clicked, 8-frame clips and lr 1e-4
# gave 0.429 / 0.429 / 0.430 / 0.430; the selected checkpoint alone 0.418 / 0.418 / 0.405 / 0.405.
# 1000 steps at lr 1e-3 (grad clip 1) lost the grounding (0.353 at every click count).
# Clicks do not work yet at these budgets (the decoder barely reacts to the point tokens), so the
# bundled model is built without this stage.
CLICK_STAGE: dict[str, Any] = {
    **RECIPE,
    "click_probability": 1.0,
    "clicks_per_frame": 2,
    "val_every": 500,
    "save_every": 500,
}
# Simulated clicks per expression in the card's click table (mpg_sam2.evaluation.simulated_clicks).
EVALUATION_CLICKS = 3
# Run folder -> (no_mask_prior, no_aggregator), in the order of the paper's Table 3.
ABLATIONS = {
    "abl_baseline": (True, True),
    "abl_mpg": (False, True),
    "abl_hga": (True, False),
    "main": (False, False),
}
