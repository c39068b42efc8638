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
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        lines = ["checkpoint does not match the model configuration:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if wrong_shape:
            lines.append(f"  shape mismatches ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
        lines.append("  check that the preset / config.json matches the checkpoint")
        raise RuntimeError("\n".join(lines))
    # A model built with empty_weights() holds meta tensors: take the checkpoint's tensors
    # instead of copying into them (requires_grad stays the model's).
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state_dict, strict=True, assign=on_meta)
    leftover = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"tensors still without data after loading: {leftover}")
