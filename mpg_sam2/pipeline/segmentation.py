"""Segment one video for several referring expressions.

Data flow::

    video file --decode--> frames uint8 [T, H, W, 3]
    per expression: BEiT-3 on every (frame, caption) pair -> mask prior generator -> prompts
    per frame (the model's frame loop, mpg_sam2.model.video_propagation.propagate):
        SAM 2 image encoder ONCE -> every expression's tracker (its own memory bank)
    -> low-res logits [-> the model's readout (config.readout, not in the paper): frames whose
       object score is below its bar emptied, mask components the prior disfavours cleared
       (pipeline/prior_components.py)] -> two bilinear resizes -> masks [T, H, W] at the source
       resolution
    click corrections, if any (pipeline/clicks.py): the corrected expression's clicked frame and
    every other frame tracked again from it, both ways, on the kept image features

The image features of a frame are shared by all expressions (the authors recompute the whole
video per sentence); everything that depends on the sentence runs per expression, exactly as
in the model core, so each expression's masks equal a separate run's.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Collection, Iterator, Sequence

import numpy as np
import torch
from sam2.modeling.sam2_base import NO_OBJ_SCORE

from mpg_sam2.frames import encoder_input, logits_to_frame_size
from mpg_sam2.model.click_correction import FrameClicks, repropagate
from mpg_sam2.model.frame_features import FrameFeatureSource
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.model.precision import sam2_input
from mpg_sam2.model.video_propagation import ExpressionTracker, FrameOutput, propagate
from mpg_sam2.pipeline.attention_maps import AttentionRecorder
from mpg_sam2.pipeline.clicks import Correction, check_corrections
from mpg_sam2.pipeline.expressions import PreparedExpression, prepare_expressions
from mpg_sam2.pipeline.host_copies import HostCopies
from mpg_sam2.pipeline.prior_components import keep_prior_components
from mpg_sam2.tokenizer import ReferringTokenizer

@dataclass(frozen=True)
class SegmentationOptions:
    threshold: float = 0.5  # on sigmoid(logit), as the authors' inference script
    record_attention: bool = False  # attention overlays (costs a little time; no number changes)
    offload_memory_to_cpu: bool = False  # keep per-frame memories on the CPU between frames
    beit3_frames_per_batch: int = 16
    # Frames encoded together by SAM 2's image encoder (its trunk works per frame, so the features
    # equal one-at-a-time up to float rounding). 1 keeps the reference path; larger batches keep
    # a GPU busy but hold that many frames' activations at once.
    image_batch_size: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {self.threshold}")
        if self.beit3_frames_per_batch < 1:
            raise ValueError("beit3_frames_per_batch must be at least 1")
        if self.image_batch_size < 1:
            raise ValueError(f"image_batch_size must be at least 1, got {self.image_batch_size}")


@dataclass
class ExpressionSegmentation:
    """Results for one expression (T frames of H x W)."""

    text: str
    masks: np.ndarray  # bool [T, H, W] at the source resolution
    mask_priors: np.ndarray  # float32 [T, g, g] in [0, 1]: the generator's pseudo-masks
    object_scores: np.ndarray  # float32 [T]: SAM 2's object-score logits
    # A frame's mask is empty unless its object score exceeds this (the model's
    # readout.object_score_threshold; 0 is SAM 2's own gate).
    object_score_threshold: float = 0.0
    prior_attention: np.ndarray | None = None  # float32 [T, g, g] in [0, 1]
    text_attention: np.ndarray | None = None  # float32 [T, h, w] in [0, 1]
    truncated: bool = False  # the expression was cut to the tokenizer limit
    corrections: tuple[Correction, ...] = ()  # click corrections applied, in order

    @property
    def frames_present(self) -> np.ndarray:
        """Indices of frames where the object is predicted present."""
        return np.flatnonzero(self.object_scores > self.object_score_threshold)

    # Pickled with the masks packed to bits (8x smaller): a ZeroGPU call returns its results
    # through a pickle queue, and 300 frames of 720p are 276 MB of bool per expression.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["masks"] = (self.masks.shape, np.packbits(self.masks, axis=-1))
        return state

    def __setstate__(self, state: dict) -> None:
        shape, bits = state["masks"]
        state["masks"] = np.unpackbits(bits, axis=-1, count=shape[-1]).astype(bool).reshape(shape)
        self.__dict__.update(state)


@dataclass
class VideoSegmentation:
    expressions: list[ExpressionSegmentation]
    timestamps_s: np.ndarray  # float64 [T]
    fps: float
    frame_size: tuple[int, int]  # (H, W)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.timestamps_s)

    def __getitem__(self, text: str) -> ExpressionSegmentation:
        for result in self.expressions:
            if result.text == text:
                return result
        raise KeyError(f"no expression {text!r}; have {[r.text for r in self.expressions]}")


@dataclass
class Progress:
    """One event of :func:`iter_segment_video`; the last one carries the result."""

    stage: str  # "encode" (per expression), "track" (per frame), "correct" (per re-tracked frame), "done"
    done: int
    total: int
    message: str
    result: VideoSegmentation | None = None


class SegmentationRun:
    """One video's segmentation, kept open so click corrections can follow it.

    :meth:`segment` encodes every expression and tracks every frame; :meth:`correct` then
    applies one :class:`~mpg_sam2.pipeline.clicks.Correction` at a time (each on the result of
    the ones before, on the image features kept from the first pass); :meth:`result` is the
    current :class:`VideoSegmentation`. Both steps are generators of :class:`Progress` events
    (stages "encode", "track", "correct"). :func:`iter_segment_video` drives it for a list of
    corrections known in advance; evaluation with simulated clicks and interactive use call
    :meth:`correct` as clicks come.

    Args:
        frames: uint8 ``[T, H, W, 3]`` RGB frames (see :mod:`mpg_sam2.video` to decode a file).
        expressions: sentences (tokenised with ``tokenizer``) or already prepared expressions.
        model: an MPG-SAM 2 model in eval mode on the device to use, in the precision to run
            (float32, or held in bf16 by :func:`mpg_sam2.model.precision.hold_in_precision`).
        fps / timestamps_s: timing of the frames (for the result and exports).
        options: threshold, attention recording, memory offloading, encoder batch.
        correctable: the expression indices that may be corrected (``True``: all). Their
            trackers keep every frame's memory and every frame's image features are kept (on
            the CPU with ``offload_memory_to_cpu``); without any, the result is the paper's and
            memory stays flat.
    """

    def __init__(
        self,
        frames: np.ndarray,
        expressions: Sequence[str] | Sequence[PreparedExpression],
        model: MPGSAM2,
        tokenizer: ReferringTokenizer | None = None,
        *,
        fps: float = 30.0,
        timestamps_s: Sequence[float] | None = None,
        options: SegmentationOptions = SegmentationOptions(),
        correctable: bool | Collection[int] = False,
    ) -> None:
        self.frames = _check_frames(frames)
        num_frames, height, width, _ = self.frames.shape
        given = timestamps_s is not None
        if timestamps_s is None:
            timestamps_s = np.arange(num_frames, dtype=np.float64) / fps
        self.timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
        if self.timestamps_s.shape != (num_frames,):
            raise ValueError(f"got {len(self.timestamps_s)} timestamps for {num_frames} frames")
        self.fps = _fps_from(self.timestamps_s, fps) if given and num_frames > 1 else float(fps)
        if expressions and isinstance(expressions[0], PreparedExpression):
            self.prepared = list(expressions)
        else:
            if tokenizer is None:
                raise ValueError("pass the checkpoint's tokenizer to segment text expressions")
            self.prepared = prepare_expressions(expressions, tokenizer, max_tokens=model.config.beit3.max_text_tokens)
        self.correctable = set(range(len(self.prepared))) if correctable is True else set(correctable or ())
        self.model = model
        self.options = options
        self.frame_size = (height, width)
        self.seconds: dict[str, float] = defaultdict(float)
        self.results: list[ExpressionSegmentation] = []
        self._trackers: list[ExpressionTracker] = []
        self._features: FrameFeatureSource | None = None
        self._recorder = AttentionRecorder(model) if options.record_attention else None
        self._text_maps: list[list[np.ndarray | None]] = [[None] * num_frames for _ in self.prepared]
        self._step_maps: dict[int, np.ndarray] = {}  # expression -> text attention of its last step
        self._logit_threshold = math.log(options.threshold / (1.0 - options.threshold))
        # Set when a step stops half-way (an error, or its consumer closing it): masks and
        # memories are then partly updated, so the run refuses to go on.
        self._broken: str | None = None
        self._host = HostCopies()  # masks and scores on their way to the result arrays

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    def segment(self) -> Iterator[Progress]:
        """Encode every expression, then track every frame (the paper's inference)."""
        if self._features is not None:
            raise RuntimeError("this run is already segmented; correct it or start a new run")
        self._check_whole()
        model, options, cfg = self.model, self.options, self.model.config
        device, dtype = model.device, model.grounding_dtype
        storage = torch.device("cpu") if options.offload_memory_to_cpu else None
        num_frames, (height, width) = self.num_frames, self.frame_size
        recorder = self._recorder

        # inference_mode is entered around the work between two yields, never across a yield:
        # the consumer's code (and, in the app, another thread resuming this generator) must
        # not run in it. The recorder likewise is active around each model call only.
        with torch.inference_mode():
            start = time.perf_counter()
            beit_pixels = encoder_input(self.frames, cfg.beit3.image_size).to(device)
            self.seconds["preprocess"] += time.perf_counter() - start
        for k, expression in enumerate(self.prepared):
            start = time.perf_counter()
            with torch.inference_mode():
                with recorder if recorder is not None else contextlib.nullcontext():
                    prompts, prior = model.encode_expression(
                        beit_pixels,
                        expression.input_ids.to(device),
                        expression.attention_mask.to(device),
                        frames_per_batch=options.beit3_frames_per_batch,
                    )
                self._trackers.append(
                    ExpressionTracker(model.sam2, prompts, storage_device=storage, keep_history=k in self.correctable)
                )
                self.results.append(
                    ExpressionSegmentation(
                        text=expression.text,
                        masks=np.zeros((num_frames, height, width), dtype=bool),
                        mask_priors=prior.prior[:, 0].float().cpu().numpy(),
                        object_scores=np.zeros(num_frames, dtype=np.float32),
                        object_score_threshold=cfg.readout.object_score_threshold,
                        prior_attention=recorder.prior_attention.numpy() if recorder is not None else None,
                        truncated=expression.truncated,
                    )
                )
            self.seconds["beit3_and_mask_prior"] += time.perf_counter() - start
            yield Progress("encode", k + 1, len(self.prepared), f"encoded expression {k + 1}/{len(self.prepared)}")
        del beit_pixels

        self._features = FrameFeatureSource(
            model.sam2,
            lambda start, stop: sam2_input(encoder_input(self.frames[start:stop], cfg.sam2.image_size).to(device), dtype),
            num_frames,
            batch_size=options.image_batch_size,
            keep=bool(self.correctable),
            storage_device=storage,
            seconds=self.seconds,
        )
        frames_loop = propagate(
            self._features, self._trackers, frame_context=self._frame_context, step_context=self._step_context,
            seconds=self.seconds,
        )
        for tracked in frames_loop:
            for k, out in enumerate(tracked.outputs):
                self._store(k, out)
            t = tracked.frame_index
            yield Progress("track", t + 1, num_frames, f"segmented frame {t + 1}/{num_frames}")
        self._host.finish()

    def correct(self, correction: Correction) -> Iterator[Progress]:
        """Apply one correction: its frame decoded with the clicks, its expression tracked
        again from there, forward then backward. Raises :class:`ClickError` for a correction
        that names a missing expression, frame or pixel."""
        check_corrections([correction], len(self.prepared), self.num_frames, self.frame_size)
        if self._features is None or len(self.results) != len(self.prepared) or self._trackers[0].next_frame != self.num_frames:
            raise RuntimeError("segment the video (run segment() to the end) before correcting it")
        k = correction.expression
        if k not in self.correctable:
            raise RuntimeError(f"expression {k} was not made correctable; pass correctable=True (or its index)")
        self._check_whole()
        clicks = correction.frame_clicks(self.frame_size, self.model.config.sam2.image_size, self.model.device)
        retracked, finished = 0, False
        try:
            for out in repropagate(
                self._trackers[k], clicks, self._features, frame_context=self._frame_context,
                step_context=lambda: self._step_context(k), seconds=self.seconds,
            ):
                self._store(k, out, clicks=clicks if out.frame_index == clicks.frame else None)
                retracked += 1
                yield Progress("correct", retracked, self.num_frames, f"expression {k + 1}: re-tracked frame {out.frame_index + 1}")
            finished = True
        finally:
            self._host.finish()
            if not finished:
                self._broken = f"a correction of expression {k} stopped after {retracked} frames"
        self.results[k].corrections += (correction,)

    def _check_whole(self) -> None:
        if self._broken is not None:
            raise RuntimeError(f"this run is half-updated ({self._broken}); start a new run")

    def result(self) -> VideoSegmentation:
        """The masks so far (after :meth:`segment` and any corrections). The mask and score
        arrays are this run's own, which a later :meth:`correct` updates in place (no copy of
        ``[T, H, W]`` masks per call); copy them to keep a state."""
        self._check_whole()
        self._host.finish()
        results = []
        for k, expression in enumerate(self.results):
            maps = self._text_maps[k]
            text_attention = np.stack(maps) if self._recorder is not None and all(m is not None for m in maps) else None
            results.append(dataclasses.replace(expression, text_attention=text_attention))
        return VideoSegmentation(results, self.timestamps_s, self.fps, self.frame_size, dict(self.seconds))

    def _frame_context(self) -> contextlib.AbstractContextManager:
        return torch.inference_mode()

    @contextlib.contextmanager
    def _step_context(self, k: int) -> Iterator[None]:
        if self._recorder is None:
            yield
            return
        self._recorder.expect_text_tokens(self.prepared[k].input_ids.shape[1])
        with self._recorder:
            yield
        self._step_maps[k] = self._recorder.pop_text_attention()[0].float().numpy()

    def _store(self, k: int, out: FrameOutput, clicks: FrameClicks | None = None) -> None:
        """Frame ``out.frame_index`` of expression ``k``: mask at the source size, score, map.
        The model's readout (``config.readout``) applies. On a frame with ``clicks`` the mask
        parts are judged by the prior as the clicks painted it (``mask_prior.click_radius``);
        a model whose clicks do not paint its prior keeps every part there: the clicks decide."""
        start = time.perf_counter()
        cfg = self.model.config
        size, (height, width) = cfg.sam2.image_size, self.frame_size
        with torch.inference_mode():
            lowres = out.heads.lowres_logits  # [1, 1, h, w]
            readout = cfg.readout
            if readout.object_score_threshold > 0:
                present = out.heads.object_score_logits[:, :, None, None] > readout.object_score_threshold
                lowres = torch.where(present, lowres, NO_OBJ_SCORE)
            radius = cfg.mask_prior.click_radius
            if readout.component_prior_ratio > 0 and (clicks is None or radius > 0):
                prior = self._trackers[k].prompts.mask_priors[out.frame_index]  # [1, 1, g, g]
                if clicks is not None:
                    prior = clicks.points.paint_prior(prior, size, radius)
                lowres = keep_prior_components(lowres, prior, self._logit_threshold, readout.component_prior_ratio)
            logits = logits_to_frame_size(lowres, size, height, width)
            result = self.results[k]
            self._host.put(result.masks, result.object_scores, out.frame_index,
                           logits[0] > self._logit_threshold, out.heads.object_score_logits[0, 0])
        if self._recorder is not None:
            self._text_maps[k][out.frame_index] = self._step_maps.pop(k)
        self.seconds["postprocess"] += time.perf_counter() - start


def iter_segment_video(
    frames: np.ndarray,
    expressions: Sequence[str] | Sequence[PreparedExpression],
    model: MPGSAM2,
    tokenizer: ReferringTokenizer | None = None,
    *,
    fps: float = 30.0,
    timestamps_s: Sequence[float] | None = None,
    options: SegmentationOptions = SegmentationOptions(),
    corrections: Sequence[Correction] = (),
) -> Iterator[Progress]:
    """Masks, mask priors, object scores (and attention maps) for every expression, as a
    generator: progress per expression and per frame, the last event carries the result.

    The arguments are :class:`SegmentationRun`'s; ``corrections`` (:mod:`.clicks`) are
    applied in order after the first pass. Without corrections the result is the paper's.
    """
    run = SegmentationRun(
        frames, expressions, model, tokenizer, fps=fps, timestamps_s=timestamps_s, options=options,
        correctable={c.expression for c in corrections},
    )
    corrections = list(corrections)
    check_corrections(corrections, len(run.prepared), run.num_frames, run.frame_size)
    yield from run.segment()
    for correction in corrections:
        yield from run.correct(correction)
    yield Progress("done", run.num_frames, run.num_frames, "done", result=run.result())


def segment_video(*args, **kwargs) -> VideoSegmentation:
    """:func:`iter_segment_video` run to completion: its result."""
    result = None
    for event in iter_segment_video(*args, **kwargs):
        result = event.result
    assert result is not None
    return result


# help() and editors show the generator's parameters.
segment_video.__signature__ = inspect.signature(iter_segment_video).replace(return_annotation="VideoSegmentation")


def _fps_from(timestamps_s: np.ndarray, default: float) -> float:
    span = float(timestamps_s[-1] - timestamps_s[0])
    return (len(timestamps_s) - 1) / span if span > 0 else default


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB of shape [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("the video has 0 frames; nothing to segment")
    return frames
