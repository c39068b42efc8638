"""Put a state dict into a model: build the model without weights, then load strictly.

:func:`empty_weights` builds a model without allocating its weights (for layout checks and
before loading). ``torch.device("meta")`` as a context manager cannot build SAM 2's Hiera (it
calls ``.item()`` on a tensor in its constructor), so instead every parameter and buffer is moved
to the meta device as soon as a module registers it: peak memory is one tensor, not the model.

:func:`load_strict` then loads a state dict in our names (after
:mod:`mpg_sam2.checkpoint.key_mapping` for the authors' checkpoints) and names every missing,
unexpected or wrongly shaped key.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Inside this context, new parameters and buffers live on the meta device."""
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def parameter_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer_on_meta(module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None:
            tensor = tensor.to("meta")
        register_buffer(module, name, tensor, persistent=persistent)

    nn.Module.register_parameter = parameter_on_meta  # type: ignore[method-assign]
    nn.Module.register_buffer = buffer_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)`` with a readable report of every mismatch.

    Checks names and shapes first, so a wrong configuration is reported as such instead of
    as a size-mismatch traceback.
    """
    expected = model.state_dict()
    report = mismatch_report(
        "checkpoint does not match the model configuration:",
        expected,
        state_dict,
        unexpected_label="unexpected keys",
        hint="check that the preset / config.json matches the checkpoint",
        check_missing=True,
    )
    if report is not None:
        raise RuntimeError(report)
    # A model built with empty_weights() holds meta tensors: take the checkpoint's tensors
    # instead of copying into them (requires_grad stays the model's).
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state_dict, strict=True, assign=on_meta)
    leftover = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"tensors still without data after loading: {leftover}")


def mismatch_report(
    title: str,
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    *,
    unexpected_label: str,
    hint: str,
    check_missing: bool = False,
    limit: int | None = None,
) -> str | None:
    """A readable report of how ``given`` (a file's tensors, in our names) fails to fit
    ``expected`` (the model's state dict), or None when it fits: keys the model lacks, keys the
    file lacks (with ``check_missing``) and shapes that differ, each list cut to ``limit`` names."""
    sections = []
    if check_missing:
        sections.append(("missing keys", sorted(set(expected) - set(given)), ", "))
    sections.append((unexpected_label, sorted(set(given) - set(expected)), ", "))
    wrong_shape = sorted(
        f"{key}: checkpoint {tuple(given[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(given)
        if tuple(given[key].shape) != tuple(expected[key].shape)
    )
    sections.append(("shape mismatches", wrong_shape, "; "))
    if not any(names for _, names, _ in sections):
        return None
    lines = [title]
    for label, names, separator in sections:
        if names:
            lines.append(f"  {label} ({len(names)}): {separator.join(names[:limit])}")
    lines.append(f"  {hint}")
    return "\n".join(lines)
