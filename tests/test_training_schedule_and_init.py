"""Options of runs from random weights: learning-rate schedules (factor per step, the rates the trainer sets, resuming on the curve) and the small BEiT-3 embedding initialisation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mpg_sam2.training.lr_schedule import lr_factor
from mpg_sam2.training.train_config import TrainConfig
from tiny_model import TRAINING_TINY

CONFIG = TRAINING_TINY
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=0, test=0, frames=4, size=64)


def test_constant_and_cosine_factors_with_a_linear_warm_up():
    assert [lr_factor(s, 10) for s in range(10)] == [1.0] * 10
    assert [lr_factor(s, 10, "constant", 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = [lr_factor(s, 12, "cosine", 2) for s in range(12)]
    assert cosine[:3] == [0.5, 1.0, 1.0]  # the ramp, then the top of the half cosine
    assert cosine[7] == pytest.approx(0.5)  # half way through the 10 decaying steps
    assert cosine[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))  # the last step, near 0
    assert all(a > b for a, b in zip(cosine[2:], cosine[3:]))
    assert lr_factor(20, 12, "cosine") == 0.0  # past the end (a run resumed beyond its --steps) stays at 0
    with pytest.raises(ValueError, match="--lr-schedule must be one of"):
        lr_factor(0, 10, "linear")


def test_train_config_refuses_a_bad_schedule_or_warm_up():
    with pytest.raises(ValueError, match="--lr-schedule must be one of"):
        TrainConfig(data=Path("d"), out=Path("o"), lr_schedule="step")
    with pytest.raises(ValueError, match="--warmup-steps must be at least 0 and below --steps"):
        TrainConfig(data=Path("d"), out=Path("o"), steps=10, warmup_steps=10)


def test_each_step_runs_at_its_scheduled_rate_and_a_resumed_run_stays_on_the_curve(synthetic_root, tmp_path):
    from mpg_sam2.training.prior_warmup import PriorObjective, warm_up_prior
    from mpg_sam2.training.trainer import Trainer

    settings = dict(data=synthetic_root, steps=5, batch_size=1, frames=2, lr=1e-3, lr_schedule="cosine",
                    warmup_steps=2, val_every=0, threads=1, seed=3, model_config=CONFIG)
    trainer = Trainer(TrainConfig(out=tmp_path / "rates", **settings), log=lambda line: None, objective=PriorObjective())
    batches = trainer._batches()
    rates = []
    for _ in range(5):
        trainer.train_step(batches)
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    trainer.close()
    assert rates == pytest.approx([1e-3 * lr_factor(s, 5, "cosine", 2) for s in range(5)], rel=1e-12)
    assert rates[1] == pytest.approx(1e-3) and rates[4] == pytest.approx(0.25e-3)  # 3 decaying steps: 1, 0.75, 0.25

    whole = tmp_path / "whole"
    warm_up_prior(out=whole, save_every=3, log=lambda line: None, **settings)
    resumed = tmp_path / "resumed"
    warm_up_prior(out=resumed, resume=whole / "step-000003", log=lambda line: None, **settings)

    def losses(run: Path) -> dict[int, float]:
        return {r["step"]: r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}

    assert sorted(losses(resumed)) == [4, 5]
    assert [losses(resumed)[s] for s in (4, 5)] == [losses(whole)[s] for s in (4, 5)]
    args = json.loads((whole / "step-000005" / "training_args.json").read_text())
    assert args["lr_schedule"] == "cosine" and args["warmup_steps"] == 2


def test_small_embedding_init_redraws_only_beit3_embeddings_of_a_random_start(tmp_path):
    from mpg_sam2.training.bootstrap import start_run
    from mpg_sam2.training.distributed import setup_distributed

    context, _ = setup_distributed("cpu")
    settings = dict(data=tmp_path, out=tmp_path / "run", model_config=CONFIG, tokenizer=None, seed=7, dataset="synthetic")
    default = start_run(TrainConfig(**settings), context, lambda line: None).model.state_dict()
    said = []
    small = start_run(TrainConfig(**settings, embedding_init="small"), context, said.append).model.state_dict()
    redrawn = {"beit3.text_embed.weight", "beit3.vision_positions.weight", "beit3.text_positions.weight",
               "beit3.vision_embed.cls_token"}
    assert {n for n, v in small.items() if not torch.equal(v, default[n])} == redrawn
    for name in redrawn:
        assert 0.015 < small[name].std() < 0.025, name
    assert default["beit3.text_embed.weight"].std() > 0.5  # nn.Embedding's N(0, 1)
    assert any("N(0, 0.02)" in line for line in said)
    with pytest.raises(ValueError, match="--embedding-init must be one of"):
        TrainConfig(**settings, embedding_init="xavier")

