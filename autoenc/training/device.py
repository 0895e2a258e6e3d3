"""Where and how a training runs: device and precision, the CPU settings it changes (and puts
back), and on CUDA the graphs that replay each step's kernels with one launch."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
from typing import Callable, Sequence

import torch

from ..errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch understands it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device={device!r} is not a device torch knows (use auto, cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but this machine has no CUDA GPU; use --device cpu or auto")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16" for a config's precision on `device`. "auto" is bf16 on a CPU with native
    bf16 arithmetic (AVX-512 BF16 or AMX): there, at the same wall time, it trains to at least
    float32's test psnr (benchmarks/precision.py, docs/speed.md); fp32 on other CPUs (bf16 would
    be emulated, slower) and on CUDA (slower than fp32 for layers this small)."""
    if precision != "auto":
        return precision
    if device.type != "cpu":
        return "fp32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def autocast(device: torch.device, precision: str, cache: bool = True):
    """bf16 autocast on `device` when precision (already resolved: "fp32" or "bf16") is bf16;
    cache=False for CUDA graphs (they cannot capture autocast's weight cache)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)




GRAPH_MODES = (True, False, "step")


def use_cuda_graphs(requested: bool | str | None, device: torch.device) -> bool | str:
    """How `fit` and `stacked.fit_stacked` use CUDA graphs: False (eager), True (each full batch's
    forward and backward replayed as graphs, `graph_forward`) or "step" (the whole training step,
    Adam included, one graph, `graph_step`; for trainings without input noise, else as True).

    requested: one of those, or None: True on a CUDA device (config: trainer.cuda_graphs,
    study.cuda_graphs). The forward/backward graphs give the same numbers several times faster
    (docs/speed.md); "step" is not yet measured on a GPU, so it is not the default. Asking for graphs on another device is a ConfigError."""
    if requested is None:
        return device.type == "cuda"
    if requested not in GRAPH_MODES or not isinstance(requested, (bool, str)):
        raise ConfigError(f"cuda_graphs={requested!r}; give True, False, \"step\" or None (the default)")
    if requested and device.type != "cuda":
        raise ConfigError(f"cuda_graphs={requested!r} needs a CUDA device, but training runs on {device}; "
                          f"leave cuda_graphs off on a CPU")
    return requested


def _quiet_accumulate_grad_stream_warning() -> None:
    # a capture's warm-up runs backward on a side stream, so the epoch's last, eager batch finds
    # the parameters' gradient accumulators made on another stream: PyTorch warns once
    # ("AccumulateGrad node's stream does not match"); the gradients are right (CUDA tests), and
    # the warning is noise in every training's output
    if hasattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch"):
        torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)


def graph_forward(module: torch.nn.Module, sample: torch.Tensor, precision: str):
    """The training step's forward (and, through autograd, its backward) captured as CUDA graphs
    for inputs shaped like `sample` (on a CUDA device): `module` maps a batch to (code,
    reconstruction), e.g. `Autoencode(model)` or a `stacked.StackedAutoencoder`; returns it with
    a forward that replays one graph forward and one backward instead of launching every kernel
    (torch.cuda.make_graphed_callables): small models are launch-bound on a GPU (docs/speed.md).
    The same kernels run, so the numbers should be those of the eager step (a CUDA-only test
    compares them). The capture's warm-up passes would move the batch-norm running averages;
    they are put back."""
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    module.train()  # the graphs hold the training-mode passes (batch statistics)
    _quiet_accumulate_grad_stream_warning()
    with autocast(sample.device, precision, cache=False):
        graphed = torch.cuda.make_graphed_callables(module, (sample,))
    with torch.no_grad():
        for name, b in module.named_buffers():
            b.copy_(buffers[name])
    return graphed


def graph_step(step: Callable[[torch.Tensor, torch.Tensor], None], index: torch.Tensor,
               module: torch.nn.Module, optimizer: torch.optim.Optimizer,
               extra: Sequence[torch.Tensor] = (), warmup: int = 3) -> Callable[[torch.Tensor, float], None]:
    """A whole training step captured as one CUDA graph; returns replay(index, lr) that runs it.

    step(index, lr): one optimizer step of `module` (forward, loss, backward, Adam through
    `adam_step`, adding to the loss sums in `extra`) on the batch rows `index` (an integer tensor
    shaped like the given one, on the CUDA device) at learning rate lr (a 0-d float32 tensor
    there). It must read nothing else that changes from step to step (no fresh noise: a denoiser
    keeps `graph_forward`). replay(index, lr) copies the batch's rows and the learning rate (a
    float) into the graph's inputs and launches the graph: one launch a step instead of the
    gather's, the loss's and Adam's (docs/speed.md).

    The capture needs a few real steps first (on a side stream); they would move the weights,
    the batch-norm averages, Adam's state and `extra`, so all of those are put back afterwards
    (Adam's state as it was, or fresh: zeros). The graph then runs the same kernels as the eager
    step, but Adam reads the learning rate from a float32 tensor (the eager step passes a
    Python float): the numbers agree to float32 rounding (a CUDA-only test)."""
    static_index = index.clone(memory_format=torch.contiguous_format)
    static_lr = torch.zeros((), dtype=torch.float32, device=index.device)
    tensors = [*module.parameters(), *module.buffers(), *extra,
               *(t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t))]
    saved = [t.detach().clone() for t in tensors]
    fresh = [p for group in optimizer.param_groups for p in group["params"] if p not in optimizer.state]
    module.train()
    _quiet_accumulate_grad_stream_warning()
    with _side_stream():
        for _ in range(warmup):
            step(static_index, static_lr)
    with torch.no_grad():
        for t, value in zip(tensors, saved):
            t.copy_(value)
        for p in fresh:  # Adam's state made by the warm-up: back to a fresh one
            for t in optimizer.state.get(p, {}).values():
                if torch.is_tensor(t):
                    t.zero_()
    run = _capture(lambda: step(static_index, static_lr))

    def replay(index: torch.Tensor, lr: float) -> None:
        static_index.copy_(index)
        static_lr.fill_(lr)
        run()
    return replay


@contextlib.contextmanager
def _side_stream():
    """Run the block on a new CUDA stream, ordered after the current one and before what follows
    (PyTorch's rule for the warm-up before a capture)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream().wait_stream(stream)


def _capture(fn: Callable[[], None]) -> Callable[[], None]:
    """Record fn() as a CUDA graph (recording runs no kernel) and return the graph's replay."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


# glibc's malloc hands blocks above its (adaptive) mmap threshold back to the kernel when they are
# freed, and trims the top of the heap, so the ~1 MB activations of every training step are fresh
# pages that fault in and get zeroed again: about 10,000 page faults and several percent of an
# epoch on CPU (docs/speed.md). Raising both thresholds keeps freed memory in the process.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


_MMAP_BYTES, _TRIM_BYTES = 32 << 20, 1 << 30  # 32 MiB is the largest mmap threshold every glibc accepts


_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve blocks up to 32 MiB from its heap and to keep up to 1 GiB of
    freed memory in the process instead of returning it to the kernel, so per-step tensors reuse
    warm pages. Process-wide, done once; returns True when it took effect (Linux with glibc),
    False elsewhere (where nothing changes)."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _malloc_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))
    except (OSError, AttributeError):
        return False
    return _malloc_tuned


def denormals_flushed() -> bool:
    """Whether this thread's CPU flushes denormal (subnormal) floats to zero now: a float32
    subnormal then reads as 0."""
    return torch.tensor(1e-40, dtype=torch.float32).item() == 0.0


def restores_cpu_settings(fn: Callable) -> Callable:
    """Decorate a function that calls `prepare` (or sets torch's thread count): the denormal
    flushing that prepare turns on for speed, and torch's CPU thread count that it sets from
    config.threads, are put back as they were when fn returns or raises. The flag is the CPU thread's, so it would otherwise stay on for
    the caller's own arithmetic (numpy's too): a notebook that trained a model would then read
    1e-40 as 0. The thread count is the process's, and numbers depend on it: a later training
    with threads=None (torch's default) would run on the earlier one's threads and give other
    numbers than in a fresh process. The default dtype, which prepare sets to float32 (a caller's
    torch.set_default_dtype(torch.float64) built float64 models that bf16 / fp32 steps could not
    run), is put back too."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before, threads, dtype = denormals_flushed(), torch.get_num_threads(), torch.get_default_dtype()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_flush_denormal(before)
            torch.set_num_threads(threads)
            torch.set_default_dtype(dtype)
    return wrapper


def prepare(device: str, threads: int | None, precision: str) -> tuple[torch.device, str]:
    """Set this process up to train on `device` ("auto", "cpu", "cuda", ...) with `threads` CPU
    threads (None: torch's default) in `precision` ("auto", "fp32", "bf16"): denormals flushed,
    default dtype float32 (callers restore both with `restores_cpu_settings`), freed memory kept on
    a CPU. Returns (the torch device, the precision resolved: "fp32" or "bf16")."""
    device = resolve_device(device)
    torch.set_default_dtype(torch.float32)  # models, noise and buffers are float32 whatever the caller's default
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if device.type == "cpu":
        keep_freed_memory()
    return device, resolve_precision(precision, device)
