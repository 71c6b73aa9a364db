"""Data-parallel training over processes: torchrun's environment, gradient averaging, the launcher.

Run ``torchrun --nproc-per-node N -m ganforge train ...``, or ``ganforge train ... --nproc N`` (from
Python ``ganforge.train(..., nproc=N)``), which starts N local processes with the environment
torchrun would give them and calls ``train`` in each (``launch``: it takes the function to run,
so this module never imports the CLI). Each
process holds a full copy of every network and trains on its ``batch_size / N`` slice of each
global batch (``TensorLoader``), with the noise of the global batch drawn identically on every
process and sliced (``GANModel.randn``). After each backward
the gradients of the phase's parameters are averaged over processes, so every process applies
the same update and the weights stay identical, as one process with the global batch would.

Gradients are averaged by PyTorch's ``DistributedDataParallel``, one wrapper per training phase
(``wrap_phases``). A GAN step does not fit DDP's usual "one module, one forward, one backward
that reaches every parameter": the engine switches ``requires_grad`` per phase (a G update must
not fill D's gradients), models call ``self.G`` and ``self.D`` directly under the papers' names,
and D runs several times per update (real, fake, a gradient penalty's double backward). So each
phase's step function is wrapped as a module (``PhaseStep``) whose forward is the whole step,
and its DDP wrapper is built while only that phase's parameters require gradients: DDP hooks
exactly those, its forward is called once per update and its backward all-reduces them, however
many times the step calls each network. Batch-norm running statistics are broadcast from rank 0
once per iteration by the engine (DDP's ``broadcast_buffers`` would do it at every forward).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    backend: str


def env_world() -> int:
    """The number of processes torchrun started (1 when not under torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def env_rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def backend_for(device_name: str) -> str:
    """NCCL for processes that train on CUDA, gloo on the CPU."""
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


def setup(device_name: str) -> DistInfo | None:
    """Join the process group torchrun describes in the environment, or None in one process.

    NCCL when the processes train on CUDA, gloo on the CPU. Each process takes the GPU of its
    local rank.
    """
    if env_world() <= 1:
        return None
    rank, world = int(os.environ["RANK"]), env_world()
    local = int(os.environ.get("LOCAL_RANK", rank))
    backend = backend_for(device_name)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda asked for, but no CUDA device is available (try --device cpu)")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU: {torch.cuda.device_count()} visible; "
                              "start at most that many processes per node")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, backend)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _flat_apply(tensors, op) -> None:
    """Run the collective ``op`` on the tensors as one flat buffer per dtype (one message, not many)."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        op(flat)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


class PhaseStep(nn.Module):
    """One training phase's step as a module, so that DistributedDataParallel can wrap it.

    Holds the model as a child (DDP finds the parameters through it); ``forward(batch)`` is the
    phase's step, returning its dict of losses.
    """

    def __init__(self, model: nn.Module, step):
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: dict) -> dict:
        return self.step(batch)


def wrap_phases(model: nn.Module, phases, own_ids: dict, device: torch.device) -> dict:
    """``{phase name: DistributedDataParallel(PhaseStep)}``, each hooking only its phase's parameters.

    DDP registers its gradient hooks on the parameters that require gradients when it is built,
    so each wrapper is built with exactly the phase's optimizers' parameters (``own_ids``: phase
    name -> ids of the parameters it updates) switched on. The
    engine sets ``requires_grad`` again before every phase. Construction also broadcasts rank 0's
    parameters and buffers, so every process starts from the same weights (after a resume too).
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    wrappers = {}
    for ph in phases:
        for p in model.parameters():
            p.requires_grad_(id(p) in own_ids[ph.name])
        wrappers[ph.name] = DDP(PhaseStep(model, ph.step), device_ids=[device.index] if device.type == "cuda" else None,
                                broadcast_buffers=False,
                                # some steps leave a parameter out now and then (e.g. a head unused with one option)
                                find_unused_parameters=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return wrappers


@torch.no_grad()
def broadcast_state(module: nn.Module, buffers=None) -> None:
    """Copy rank 0's parameters and buffers (or only the given ``buffers``) to every process.

    Buffers matter for batch norm: without SyncBatchNorm each process updates its running
    statistics from its own slice, and rank 0's become everyone's, as DDP's broadcast_buffers does.
    """
    tensors = list(buffers) if buffers is not None else [*module.parameters(), *module.buffers()]
    if tensors:
        _flat_apply(tensors, lambda flat: dist.broadcast(flat, 0))


def mean_over_ranks(values: torch.Tensor, world: int) -> torch.Tensor:
    values = values.clone()
    dist.all_reduce(values)
    return values.div_(world)


def any_rank(flag: bool, device) -> bool:
    """True on every process when ``flag`` is true on any (e.g. Ctrl-C seen by one process)."""
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def backend() -> str | None:
    return dist.get_backend() if dist.is_initialized() else None


def convert_sync_bn(model: nn.Module, backend: str | None) -> int:
    """Swap BatchNorm for SyncBatchNorm, so batch statistics come from the global batch.

    Returns how many layers changed. PyTorch implements SyncBatchNorm only for CUDA/XPU (and
    NCCL-style backends); on the CPU with gloo it cannot run, so that is an error rather than a
    silent fallback to per-process statistics.
    """
    if backend is None:
        return 0  # one process: the batch statistics already are the global batch's
    if backend == "gloo":
        raise ConfigError("sync_bn needs CUDA: PyTorch's SyncBatchNorm does not run on the CPU (gloo); "
                          "drop --set sync_bn=true (each process then normalises its own slice)")
    n = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place below the root; parameters are kept
    return n


# -- the launcher --------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, threads: int, results, fn, args: tuple, kwargs: dict) -> None:
    # Its own process group: a Ctrl-C at the terminal reaches only the launcher, which passes it
    # on exactly once (a second one means "stop now" to the training loop).
    os.setpgrp()
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if threads:
        torch.set_num_threads(threads)
    try:
        value = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the launcher, which re-raises it
        from ..errors import GanforgeError

        if not isinstance(e, (GanforgeError, KeyboardInterrupt)) and type(e).__name__ != "Interrupted":
            import traceback

            traceback.print_exc()  # a bug, not a user's mistake: its traceback is worth seeing
        results.put((rank, "error", _picklable(e)))
        sys.exit(1)
    if rank == 0:
        results.put((rank, "ok", value))
    # The work is done and saved: leave without the interpreter's teardown, where a communication
    # thread still running in the C++ runtime can abort the process ("terminate called without an
    # active exception", seen once in a fresh clone's .ci/run after the run had finished).
    # The result is flushed first.
    results.close()
    results.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _picklable(e: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - an exception that cannot cross processes is sent as its text
        return RuntimeError(f"{type(e).__name__}: {e}")


def launch(nproc: int, fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` in ``nproc`` local processes, as torchrun would run them, and
    return what rank 0's call returned; an exception in any process is raised here (rank 0's first).

    ``fn`` must be importable by name (a module-level function: ``ganforge.train`` is one), since
    the processes are spawned fresh. Each gets torchrun's environment (RANK, LOCAL_RANK,
    WORLD_SIZE, MASTER_ADDR/PORT). If one process fails, the others are stopped (they would wait
    for it forever in the next all-reduce); Ctrl-C and SIGTERM are passed on, so the run saves a
    checkpoint and stops.
    """
    import multiprocessing as mp
    import queue
    import signal
    import time

    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"--nproc must be a positive number of processes, got {nproc!r}")
    cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if nproc > 4 * max(cpus, gpus):
        raise ConfigError(f"--nproc {nproc} is far more processes than this machine has CPUs ({cpus})")
    # Share the cores rather than oversubscribe them (torchrun would set 1 thread each).
    threads = 0 if "OMP_NUM_THREADS" in os.environ else max(1, cpus // nproc)
    ctx = mp.get_context("spawn")
    port = _free_port()
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, nproc, port, threads, results, fn, args, kwargs))
             for r in range(nproc)]

    def forward(signum, frame):
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    got: dict = {}

    def drain(timeout: float = 0.0) -> None:
        try:
            while True:
                rank, kind, value = results.get(timeout=timeout) if timeout else results.get_nowait()
                got.setdefault(rank, (kind, value))
        except queue.Empty:
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for p in procs:
            p.start()
        failed_at = None
        while any(p.exitcode is None for p in procs):
            drain()
            if failed_at is None and any(c not in (None, 0) for c in (p.exitcode for p in procs)):
                failed_at = time.time()
            if failed_at is not None and time.time() - failed_at > 5:
                for p in procs:  # the rest wait for the failed one in a collective: stop them
                    if p.is_alive():
                        p.terminate()
            time.sleep(0.05)
        for p in procs:
            p.join()
        drain(timeout=0.5)  # a message can still be in the pipe after its process ended
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    errors = sorted((r, v) for r, (k, v) in got.items() if k == "error")
    if errors:
        # Interrupted (Ctrl-C) and user errors over the exceptions of processes stopped because of them.
        raise errors[0][1]
    if 0 in got and all(p.exitcode == 0 for p in procs):
        return got[0][1]
    codes = ", ".join(f"rank {r}: {p.exitcode}" for r, p in enumerate(procs))
    raise RuntimeError(f"a training process ended without a result (exit codes {codes})")
