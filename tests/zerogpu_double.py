"""A stand-in for ZeroGPU's ``spaces.GPU`` that keeps its process model, for CPU tests.

The real machinery cannot run here: its worker calls ``torch.Tensor([0]).cuda()`` first and
stops with "Found no NVIDIA driver" (``spaces`` 0.51, ``zero/wrappers.py``). What it does
around that is reproduced: each call runs in a forked child of a process that has imported the
app (so it holds the models built at import, as ZeroGPU's main process does); the arguments go
in pickled and the return value (or a ``gr.Error``; any other exception only by class name)
comes back pickled; nothing else the child does reaches the test's process.

The children are forked from multiprocessing's fork server (a process that imported ``app`` and
did nothing else) rather than from pytest's own process: forked from a process that had already
run the model, exported videos and forked before, a child here could hang inside the CPU matrix
kernels (seen on this 2-core machine; the GPU worker of a Space runs those on CUDA).

The child also records every file it opens or changes (audit events) and every model load, so
a test can show that the GPU function does neither.
"""
from __future__ import annotations

import faulthandler
import importlib
import multiprocessing
import os
import pickle
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

# Audit events that read or change a file (https://docs.python.org/3/library/audit_events.html).
_FILE_EVENTS = {"open", "os.remove", "os.rename", "os.replace", "os.mkdir", "os.rmdir", "shutil.rmtree",
                "shutil.copyfile", "shutil.move", "os.truncate", "os.link", "os.symlink"}
# The OS's own introspection files (CPU counts, memory) are not the app's files.
_SYSTEM_PREFIXES = ("/proc/", "/sys/", "/dev/")
CALL_TIMEOUT_S = 120


@dataclass
class ChildReport:
    file_events: list[tuple[str, str]] = field(default_factory=list)  # (event, path)
    model_loads: list[str] = field(default_factory=list)


class ForkedGpu:
    """``ForkedGpu("module:function")(*args)`` runs that function as a ZeroGPU call would.

    The function is named, not passed, because the child finds it in its own imported modules;
    ``app:segment_on_gpu`` means the app's GPU function without its decorator.
    """

    def __init__(self, function: str, preload: tuple[str, ...] = ("app",)) -> None:
        self.function = function
        self.preload = list(preload)
        self.calls = 0
        self.reports: list[ChildReport] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        payload = pickle.dumps((args, kwargs))  # as spaces' arg queue does; fails on the unpicklable
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(self.preload)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child_main, args=(self.function, payload, send), daemon=True)
        child.start()
        send.close()
        try:
            if not receive.poll(CALL_TIMEOUT_S):
                raise TimeoutError(f"the forked GPU call did not answer within {CALL_TIMEOUT_S} s")
            outcome, value, report = pickle.loads(receive.recv_bytes())
        finally:
            receive.close()
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
        self.reports.append(report)
        if outcome == "ok":
            return value
        if outcome == "gr.Error":
            raise value
        raise RuntimeError(f"ZeroGPU worker error: {value}")


def _resolve(function: str) -> Callable[..., Any]:
    module_name, name = function.split(":")
    fn = getattr(importlib.import_module(module_name), name)
    return getattr(fn, "__wrapped__", fn)  # the app's GPU function without its decorator


def _child_main(function: str, payload: bytes, send) -> None:
    faulthandler.dump_traceback_later(CALL_TIMEOUT_S - 10, exit=True)  # a stuck child says where
    report = ChildReport()

    def audit(event: str, args: tuple) -> None:
        if event in _FILE_EVENTS and args:
            path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else repr(args[0])
            if not path.startswith(_SYSTEM_PREFIXES):
                report.file_events.append((event, path))

    from mpg_sam2.app.models import ModelPool

    original_load = ModelPool.load

    def recording_load(pool, source):
        report.model_loads.append(source)
        return original_load(pool, source)

    ModelPool.load = recording_load
    try:
        fn = _resolve(function)
        args, kwargs = pickle.loads(payload)
        sys.addaudithook(audit)  # after unpickling: what the GPU function itself does
        result = ("ok", fn(*args, **kwargs))
    except Exception as error:
        import gradio as gr

        if isinstance(error, gr.Error):
            result = ("gr.Error", error)
        else:
            traceback.print_exc()
            result = ("error", type(error).__name__)
    try:
        message = pickle.dumps((*result, report))
    except Exception as error:  # spaces turns an unpicklable result into gr.Error('PicklingError')
        message = pickle.dumps(("error", f"PicklingError: {error}", report))
    send.send_bytes(message)
    send.close()
    os._exit(0)  # no atexit handlers, no flushing of the parent's buffers: as a worker ends
