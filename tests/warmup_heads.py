"""A prior warm-up with a training-time head loss (attribute, caption, motion): trained, checked and resumed."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from mpg_sam2.config import MPGSAM2Config
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from tiny_model import TRAINING_TINY

SETTINGS = dict(batch_size=1, frames=2, lr=2e-3, val_every=0, threads=1, seed=3, model_config=TRAINING_TINY,
                log=lambda line: None)


def check_head_warm_up(root: Path, tmp_path: Path, option: str, log_key: str, head_name: str, weight: float = 0.5,
                       model_config: MPGSAM2Config = TRAINING_TINY, **extra) -> dict:
    """Train 4 steps of ``model_config`` with ``option`` (e.g. "caption_loss") = ``weight`` (and any
    ``extra`` settings) and check that every logged loss is prior + weight x the ``log_key`` term,
    that ``head_name`` is saved with the optimizer state and not in the model, and that resuming at
    step 2 repeats the losses, weights and head exactly. Returns the run's settings; its step-2
    checkpoint is ``tmp_path/straight/step-000002``."""
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.prior_warmup import warm_up_prior

    settings = {**SETTINGS, "model_config": model_config, option: weight, **extra}
    straight = warm_up_prior(root, tmp_path / "straight", steps=4, save_every=2, **settings)
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert all(r[log_key] > 0 and abs(r["loss"] - r["prior"] - weight * r[log_key]) < 1e-5 for r in log)
    assert json.loads((straight / "training_args.json").read_text())[option] == weight
    state = torch.load(straight / "training_state.pt", weights_only=True)
    assert set(state["objective_state"]) == {head_name}
    # The model saved is the plain architecture: no head in it.
    saved = load_pretrained(straight).model.state_dict()
    assert set(saved) == set(MPGSAM2(model_config).state_dict())

    resumed = warm_up_prior(root, tmp_path / "resumed", steps=4, resume=tmp_path / "straight" / "step-000002", **settings)
    again = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in again] == [r["loss"] for r in log[2:]]
    for name, value in load_pretrained(resumed).model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    head = torch.load(resumed / "training_state.pt", weights_only=True)["objective_state"][head_name]
    for name, value in head.items():
        assert torch.equal(value, state["objective_state"][head_name][name]), name
    return settings
