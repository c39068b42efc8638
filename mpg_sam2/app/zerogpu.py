"""The GPU function's decorator: ZeroGPU's ``spaces.GPU`` on a ZeroGPU Space, a lock elsewhere.

ZeroGPU's process model (``spaces`` 0.51, ``zero/wrappers.py``): each decorated call runs in a
worker forked from the main process, its arguments and return value pickled through a queue;
a worker is reused only after a call that succeeded, so anything a call leaves in the worker's
globals is lost at the next fork. Hence the app builds its models at module level (``spaces``
moves them into each worker) and its GPU function gets decoded frames and token ids and returns
arrays, with decoding before and exports after it in the main process.

Every ZeroGPU call gets its own GPU, so several may run at once; a single dedicated GPU or a
CPU runs one at a time (the lock), while decoding and exports of other requests go on.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Concurrent runs of the Segment event: each ZeroGPU call gets a GPU of its own; the CPU work
# around it (decoding, exports) is what several overlapping runs share there.
ZEROGPU_CONCURRENCY = 4


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space (``spaces`` reads the same variable, ``spaces/config.py``)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def run_concurrency() -> int:
    """How many Segment runs the queue lets run at once."""
    return ZEROGPU_CONCURRENCY if on_zerogpu() else 1


def gpu_function(duration: Callable[..., int]) -> Callable[[F], F]:
    """Decorate the app's one GPU function.

    ``duration`` gets the call's arguments (including any ``gr.Progress`` that Gradio passes)
    and returns the seconds to reserve; it is only used on ZeroGPU.
    """

    def decorate(fn: F) -> F:
        if on_zerogpu():
            import spaces  # imported before torch by app.py, as ZeroGPU requires

            return spaces.GPU(duration=duration)(fn)
        lock = threading.Lock()

        @functools.wraps(fn)
        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return fn(*args, **kwargs)

        return one_at_a_time  # type: ignore[return-value]

    return decorate
