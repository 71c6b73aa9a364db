"""The training engine: one loop for every model.

A model (``ganforge.models.base.GANModel``) declares networks, optimizers and phases; this module
owns the rest: configuration, data on the device, seeding, the phase schedule, AMP, EMA of named networks,
progress, ``metrics.jsonl``, sample grids, atomic checkpoints, exact resume and Ctrl-C.
"""
from __future__ import annotations

import contextlib
import copy
import errno
import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .. import config as C
from ..data import DataSpec, GroupLoader, eval_data_name, images_to_float, load_data, spec_of
from ..errors import ConfigError, DataError, DivergedError, RunDirError
from ..files import atomic_save, atomic_write_bytes, remove_temps
from ..models.base import batch_len
from ..nn import moving_average_
from ..registry import get_model_class
from . import distributed, monitor
from .checkpoint import FORMAT, load_checkpoint, save_generator
from .runlock import LOCK, run_lock
from .schedule import lr_factor

CKPT = "checkpoints/last.pt"
# What a run writes; --force removes exactly these, never anything else in the directory.
RUN_FILES = ("config.yaml", "metrics.jsonl", "eval.jsonl", "samples", "checkpoints", "generator.safetensors",
             "losses.png", "tensorboard")


class Interrupted(Exception):
    """Training stopped by Ctrl-C (or SIGTERM) after saving a checkpoint."""

    def __init__(self, step: int, out: Path, main: bool = True):
        super().__init__(f"interrupted at step {step}; checkpoint saved; continue with "
                         f"`ganforge train --resume {out}`")
        self.step, self.out, self.main = step, out, main

    def __reduce__(self):  # crosses from a training process to the launcher (distributed.launch)
        return (Interrupted, (self.step, self.out, self.main))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available (try --device cpu)")
    return torch.device(name)


def is_run(path: Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


def training_seconds(run_dir: Path) -> float | None:
    """The training time a run logged last (``time`` of the last row of metrics.jsonl), or None."""
    log = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    return rows[-1].get("time") if rows else None


def _holds_files(path: Path) -> bool:
    """Whether the directory holds anything but a run lock (which a finished run leaves behind)."""
    return path.is_dir() and any(p.name != LOCK for p in path.iterdir())


def build_model(cfg: dict, spec: DataSpec):
    cls = get_model_class(cfg["model"])
    model = cls(cfg, spec)
    if cfg.get("ema", 0) > 0:
        for name in model.ema_nets:
            # Registered as a submodule, so the EMA copy travels with state_dict and .to().
            setattr(model, f"{name}_ema", _ema_copy(getattr(model, name)))
    return model


def _ema_copy(net, old=None):
    ema = copy.deepcopy(net).requires_grad_(False).eval()
    if old is not None:  # a grown network: the layers it had keep their average
        new = ema.state_dict()
        ema.load_state_dict({k: v for k, v in old.state_dict().items() if k in new and v.shape == new[k].shape},
                            strict=False)
    return ema


def _fitted_size(cls, cfg: dict, native) -> int | None:
    """The image size a model asks for when none is set and the data's own does not suit it
    (``GANModel.fit_image_size``), else None."""
    if cfg["image_size"] is not None or not native:
        return None
    want = cls.fit_image_size(native)
    return want if want != native else None


def create(name: str, data: str = "digits", **config):
    """A model ready to train or sample: ``ganforge.create("dcgan", z_dim=64).G``."""
    cls = get_model_class(name)
    cfg = C.resolve(cls.defaults, {"model": cls.name, "data": data}, config, by_kind=cls.defaults_by_kind)
    spec = spec_of(cfg["data"], cfg["image_size"])
    if spec.kind == "image" and (fit := _fitted_size(cls, cfg, spec.image_size)) is not None:
        cfg["image_size"] = fit
        spec = spec_of(cfg["data"], fit)
    _check_fit(cls, spec, None)
    return build_model(cfg, spec)


def _check_fit(cls, spec: DataSpec, raw) -> None:
    if spec.data_kind not in cls.data_kinds:
        kinds = " or ".join(cls.data_kinds)
        raise ConfigError(f"{cls.name} trains on {kinds} data, not on {spec.data_kind} data")
    if cls.needs_labels and (raw is not None and raw.y is None or spec.n_classes is None):
        raise DataError(f"{cls.name} needs class labels; this data set has none")


def run_config(run_dir: Path, **override) -> dict:
    """A run's recorded settings (with ``override`` on top), resolved against today's defaults:
    settings added since the run was made take their default values, or the model's
    ``legacy_defaults`` where today's default would change how the run trains."""
    cfg = {**C.load_yaml(run_dir / "config.yaml"), **override}
    if not isinstance(cfg.get("model"), str):
        raise RunDirError(f"{run_dir / 'config.yaml'} names no model; it is not a ganforge run's config")
    cls = get_model_class(cfg["model"])
    return C.resolve(cls.defaults, {**cls.legacy_defaults, **cfg}, by_kind=cls.defaults_by_kind)


def load_run(run_dir, device="cpu", which: str = "last"):
    """The model of a finished or interrupted run, with its trained weights, in eval mode."""
    run_dir = Path(run_dir)
    if not is_run(run_dir):
        raise RunDirError(f"{run_dir} is not a ganforge run (no config.yaml)")
    cfg = run_config(run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoints" / f"{which}.pt")
    model = build_model(cfg, DataSpec(**ckpt["spec"]))
    model.load_state_dict(ckpt["model"])
    model.step = ckpt["step"]
    return model.to(pick_device(device) if isinstance(device, str) else device).eval()


def _default_out(cfg: dict) -> Path:
    data = cfg["data"].replace("folder:", "").replace("/", "_").strip("_.") or "data"
    base = Path("runs") / f"{cfg['model']}-{data}"
    out, i = base, 1
    while _holds_files(out):
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if _holds_files(out):
        if not force:
            what = "already holds a run" if is_run(out) else "exists and is not empty"
            raise RunDirError(f"{out} {what}: continue it with --resume {out}, or pass --force to start over")
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


class Trainer:
    """Runs one training job; see :func:`train` for the usual entry point."""

    def __init__(self, cfg: dict, out: Path, resume_state: dict | None = None, progress: bool = True,
                 raw=None, dist=None):
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.rank, self.world = (dist or (0, 1))
        self.main = self.rank == 0
        self.device = pick_device(cfg["device"])
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())  # the local rank's, see setup()
        torch.manual_seed(cfg["seed"])

        cls = get_model_class(cfg["model"])
        raw = raw if raw is not None else load_data(cfg["data"], cfg["image_size"], root=cfg["data_root"],
                                                     download=cfg["download"], skip_bad=cfg["skip_bad_images"],
                                                     **cls.data_options(cfg))
        fit = _fitted_size(cls, cfg, raw.x.shape[-1] if raw.kind == "image" else None)
        if fit is not None:  # the model takes another size than the data's own (progan: a power of two)
            cfg["image_size"] = fit  # recorded in the run's config, so resume and eval load the same size
            raw = load_data(cfg["data"], fit, root=cfg["data_root"], download=cfg["download"],
                            skip_bad=cfg["skip_bad_images"], **cls.data_options(cfg))
        self.raw = raw
        self.spec = spec_of(cfg["data"], cfg["image_size"], raw=raw)
        _check_fit(cls, self.spec, raw)
        if cfg["batch_size"] > len(raw):
            raise ConfigError(f"batch size {cfg['batch_size']} is larger than the data set ({len(raw)} items)")
        if cfg["batch_size"] % self.world:
            raise ConfigError(f"batch size {cfg['batch_size']} does not split evenly over {self.world} processes")

        self.model = build_model(cfg, self.spec)
        self.model.prepare(raw)  # before a resume's checkpoint, which then restores what it kept
        if getattr(cls, "grid_from_held_out", False):
            self._grid_data(cls)
        if cfg.get("sync_bn") and self.world > 1:
            distributed.convert_sync_bn(self.model, distributed.backend())
        # NHWC for convolutions where it pays (benchmarks/fastpath.py); a no-op for linear layers.
        self.memory_format = torch.channels_last if cfg.get("channels_last") and raw.kind == "image" \
            else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=self.memory_format)
        self.model.rank, self.model.world = self.rank, self.world
        self.opts, self._base_lr = {}, {}
        self._set_optimizers()
        self._set_phases()
        self._ddp, self._compiled = {}, False
        self._grown = []  # the steps at which the model changed (GANModel.on_step), for resume

        # One group {"x", "y"} for plain data (shuffled exactly as a single TensorLoader); a group per
        # domain for translation data.
        self.loader = GroupLoader(raw.batch_groups(self.device), cfg["batch_size"], seed=cfg["seed"], rank=self.rank,
                                  world=self.world, transform=self._to_float if raw.kind == "image" else None,
                                  augment=self.model.loader_augment(), device=self.device)

        amp = cfg["amp"]
        if amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("amp=fp16 needs CUDA (float16 autocast with a GradScaler); on the CPU use amp=bf16 "
                              "or amp=off")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        # With fused Adam (GANModel.adam) the scaler hands the inf check to the optimizer's kernel:
        # no host sync per step even with fp16.
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.model.grad_scaler = self.scaler
        self.step = 0
        self.nan_skipped = 0  # updates skipped for a non-finite loss (nan_policy=skip)
        self._nonfinite: dict = {}  # nan_policy=stop: per phase, the first non-finite step (on the device)
        self._saved_step = None  # the step of the checkpoint on disk, for messages
        if resume_state is not None:
            # Rebuild the checkpoint's stage first, so that its networks and optimizers fit the state.
            for step in resume_state.get("grown", []):
                self._apply(self.model.on_step(step), step)
            self._load_state(resume_state)
        self._wrap()
        self._compiled = self._compile() if cfg.get("compile") else False
        self._tb = None  # TensorboardLog while fit() runs with cfg["tensorboard"]
        if cfg.get("tensorboard") and self.main:
            monitor.check_tensorboard()

    def _grid_data(self, cls) -> None:
        """Give the model the held-out split for its sample grids, where the data has one."""
        cfg = self.cfg
        name = eval_data_name(cfg["data"])
        if name == cfg["data"]:
            return  # no test split: the grids keep the training images prepare() chose
        try:
            held = load_data(name, cfg["image_size"], root=cfg["data_root"], **cls.data_options(cfg))
        except DataError:
            return  # e.g. a folder without test/: training images it is
        self.model.prepare_grid(held)

    # -- what the engine derives from the model's networks (rebuilt when it grows) ---------
    def _set_optimizers(self, fresh: bool = True) -> None:
        if fresh:
            self.opts, self._base_lr = self.model.optimizers(), {}
        # The schedule (lr_decay) scales these; read before a resume loads decayed rates into the
        # groups, and kept for the groups that were already there when a model adds some.
        for k, o in self.opts.items():
            base = self._base_lr.get(k, [])
            self._base_lr[k] = base + [g["lr"] for g in o.param_groups[len(base):]]

    def _set_phases(self) -> None:
        self.phases = self.model.phases()
        for ph in self.phases:
            missing = [o for o in ph.optimizers if o not in self.opts]
            if missing:
                raise ValueError(f"phase {ph.name} names unknown optimizers {missing}")
        self._all_params = [p for o in self.opts.values() for g in o.param_groups for p in g["params"]]
        ids = lambda names: {id(p) for o in names for g in self.opts[o].param_groups for p in g["params"]}  # noqa: E731
        self._own_ids = {ph.name: ids(ph.optimizers) for ph in self.phases}  # what each phase updates
        self._phase_ids = {ph.name: self._own_ids[ph.name] | ids(ph.keep_graph) for ph in self.phases}

    def _wrap(self) -> None:
        # Batch-norm running statistics are the only state that can drift apart between
        # processes (each sees its own slice); they are re-broadcast from rank 0 every step.
        self._bn_buffers = [b for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                            and not isinstance(m, torch.nn.SyncBatchNorm) for b in m.buffers()]
        if self.world > 1:
            self._ddp = distributed.wrap_phases(self.model, self.phases, self._own_ids, self.device)

    def _apply(self, change, step: int) -> None:
        """Rebuild what was derived from the model after ``on_step`` changed it (``Change``)."""
        if not change:
            return
        self._grown.append(step)
        if change.nets or change.optimizers:
            self.model.to(self.device, memory_format=self.memory_format)  # new layers onto the device
            if self.cfg.get("ema", 0) > 0:
                for name in self.model.ema_nets:
                    net, old = getattr(self.model, name), getattr(self.model, f"{name}_ema")
                    shapes = lambda m: [(k, v.shape) for k, v in m.state_dict().items()]  # noqa: E731
                    if shapes(net) != shapes(old):
                        setattr(self.model, f"{name}_ema", _ema_copy(net, old))
            self._set_optimizers(fresh=change.optimizers)
            self._set_phases()
            if self._ddp:
                self._wrap()
            if self._compiled:
                self._compile()
        if change.batch_size is not None:
            bs = change.batch_size
            if bs > len(self.raw) or bs % self.world:
                raise ConfigError(f"{self.cfg['model']} grew to batch size {bs}, which the data set "
                                  f"({len(self.raw)} items) or {self.world} processes cannot hold")
            self.loader.set_batch_size(bs)

    def _to_float(self, batch: dict) -> dict:
        batch = images_to_float(batch)
        if self.memory_format is torch.channels_last:
            for k, v in batch.items():
                if v.ndim == 4 and v.is_floating_point():
                    batch[k] = v.contiguous(memory_format=torch.channels_last)
        return batch

    # -- torch.compile --------------------------------------------------------------------
    def _nets(self):
        return [m for name, m in self.model.named_children()
                if not name.endswith("_ema") and any(True for _ in m.parameters())]

    def _compile(self) -> bool:
        """Compile each network in place (state_dict keys unchanged, so checkpoints and resume are
        the same with and without --compile); on failure warn once and train uncompiled."""
        try:
            for net in self._nets():
                net.compile()
        except Exception as e:  # noqa: BLE001 - no compiler, unsupported Python/platform, ...
            self._uncompile(e)
            return False
        return True

    def _uncompile(self, err: Exception) -> None:
        for net in self._nets():
            net._compiled_call_impl = None
        if self.main:
            msg = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
            print(f"ganforge: warning: torch.compile failed ({type(err).__name__}: {msg}); training without it",
                  file=sys.stderr, flush=True)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"version": FORMAT, "step": self.step, "spec": asdict(self.spec), "model": self.model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
                "scaler": self.scaler.state_dict(), "loader": self.loader.state_dict(), "rng": rng,
                "grown": list(self._grown), "nan_skipped": self.nan_skipped}

    def _load_state(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            for k, o in self.opts.items():
                o.load_state_dict(state["optimizers"][k])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.loader.load_state_dict(state["loader"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunDirError(f"checkpoint does not match this model/config: {str(e).splitlines()[0][:200]}") \
                from None
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step = self._saved_step = int(state["step"])
        self.nan_skipped = int(state.get("nan_skipped", 0))

    def save_checkpoint(self) -> None:
        self._check_finite()  # on every process: they must stop together
        if not self.main:
            return
        # A finite loss can still give infinite gradients: never replace the last good checkpoint
        # with weights that have already diverged (one sync per checkpoint, not per step).
        tensors = [t for t in self.model.state_dict().values() if torch.is_tensor(t) and t.is_floating_point()]
        if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
            raise DivergedError(f"the weights are not finite at step {self.step}, so no checkpoint was written; "
                                f"{self._kept()}; {self._hint()}")
        try:
            atomic_save(self.state_dict(), self.out / CKPT)
        except OSError as e:
            full = " (is the disk full?)" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
            raise RunDirError(f"cannot write the checkpoint of step {self.step}: {e.strerror}{full}; "
                              f"{self._kept()}") from None
        self._saved_step = self.step

    def _kept(self) -> str:
        if self._saved_step is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint (step {self._saved_step}) is kept in {self.out / CKPT}"

    def _hint(self) -> str:
        amp = ", --amp off" if self.cfg["amp"] != "off" else ""
        return f"try a lower lr{amp}, or --set nan_policy=skip to skip such updates"

    def _finite(self, phase: str, out: dict) -> bool:
        """Whether to apply the phase's update. nan_policy=skip checks the loss now (one host sync
        per phase, the price of skipping exactly the bad update); stop only notes a non-finite loss
        on the device (``_watch``) and raises where the loop syncs anyway (``_check_finite``)."""
        if self.cfg["nan_policy"] != "skip":
            self._watch(phase, out)
            return True
        bad = not bool(torch.isfinite(out["loss"].detach()).all())
        if self.world > 1:  # every process must skip the same update, or their backward passes deadlock
            bad = distributed.any_rank(bad, self.device)
        if bad:
            self.nan_skipped += 1
        return not bad

    def _watch(self, phase: str, out: dict) -> None:
        """Keep, on the device, the first step at which the phase's loss was not finite, that loss
        and which of its terms were not finite: no host sync, so the fast path stays sync-free."""
        loss = out["loss"].detach().float().sum()
        w = self._nonfinite.get(phase)
        if w is None:
            w = self._nonfinite[phase] = {"step": torch.full((), -1, dtype=torch.long, device=loss.device),
                                          "now": torch.zeros((), dtype=torch.long, device=loss.device),
                                          "loss": torch.zeros((), device=loss.device), "terms": {}}
        new = ~torch.isfinite(loss) & (w["step"] < 0)
        # fill_ passes the step as a kernel argument; torch.tensor(step, device=cuda) would copy it
        # from host memory, which waits for the stream: the very sync this avoids.
        w["now"].fill_(self.step + 1)
        w["step"] = torch.where(new, w["now"], w["step"])
        w["loss"] = torch.where(new, loss, w["loss"])
        for k, v in out.items():
            if k != "loss" and torch.is_tensor(v):
                flag = new & ~torch.isfinite(v.detach().float()).all()
                w["terms"][k] = flag if k not in w["terms"] else w["terms"][k] | flag

    def _check_finite(self) -> None:
        """nan_policy=stop: raise if any phase's loss was not finite since the start (one sync,
        at log steps and before checkpoints, which sync anyway); the weights it spoiled are never
        saved, so the last good checkpoint stays."""
        if not self._nonfinite:
            return
        phases = list(self._nonfinite)
        steps = torch.stack([self._nonfinite[p]["step"] for p in phases]).tolist()
        seen = [(st, p) for st, p in zip(steps, phases) if st >= 0]
        anywhere = distributed.any_rank(bool(seen), self.device) if self.world > 1 else bool(seen)
        if not anywhere:
            return
        if not seen:
            raise DivergedError(f"the loss became non-finite on another process by step {self.step}; training "
                                f"stopped and {self._kept()}; {self._hint()}")
        step, phase = min(seen)
        w = self._nonfinite[phase]
        terms = [k for k, f in w["terms"].items() if bool(f)]
        which = f" (non-finite term: {', '.join(terms)})" if terms else ""
        raise DivergedError(f"the loss became {float(w['loss'])} at step {step} in phase {phase}{which}; "
                            f"training stopped and {self._kept()}; {self._hint()}")

    # -- one iteration --------------------------------------------------------------------
    def _set_trainable(self, phase) -> None:
        # Only the phase's own networks build gradients: a G step does not fill D's .grad, and a
        # D step does not backpropagate through G at all.
        ids = self._phase_ids[phase.name]
        for p in self._all_params:
            p.requires_grad_(id(p) in ids)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, acc: dict) -> int:
        """One iteration over the active phases; returns the number of real images they read."""
        self._apply(self.model.on_step(self.step), self.step)
        if self._compiled is True:
            return self._first_compiled_step(acc)
        return self._iteration(acc)

    def _iteration(self, acc: dict) -> int:
        images, batch = 0, None
        self.model.ctx = {}
        if self.cfg["lr_decay"]:
            f = lr_factor(self.step, self.cfg["steps"], self.cfg["lr_decay"])
            for k, o in self.opts.items():
                for g, base in zip(o.param_groups, self._base_lr[k]):
                    g["lr"] = base * f
        for phase in self.phases:
            if not phase.active(self.step):
                continue
            self._set_trainable(phase)
            opts = [self.opts[o] for o in phase.optimizers]
            # Under torchrun, the phase's DistributedDataParallel wrapper: its backward averages
            # the gradients of the phase's parameters over the processes.
            step = self._ddp.get(phase.name, phase.step)
            for _ in range(phase.repeats):
                if phase.data and (phase.fresh or batch is None):
                    batch = next(self.loader)
                    images += batch_len(batch) * self.world
                with self._autocast():
                    out = step(batch if phase.data else {"n": self.loader.local})
                if not self._finite(phase.name, out):
                    continue  # nan_policy=skip: no backward, no optimizer step, no after_phase
                self.scaler.scale(out["loss"]).backward()
                for o in opts:
                    self.scaler.step(o)
                    # Freed right away, so no gradient outlives its phase (or holds memory).
                    o.zero_grad(set_to_none=True)
                self.scaler.update()
                self.model.after_phase(phase.name)
                for k, v in out.items():
                    key = f"{phase.name}_loss" if k == "loss" else k
                    s, n = acc.get(key, (0.0, 0))
                    acc[key] = (s + v.detach().float(), n + 1)  # stays on the device: no sync here
        if self.world > 1 and self._bn_buffers:
            distributed.broadcast_state(self.model, buffers=self._bn_buffers)
        self._update_ema()
        return images

    def _first_compiled_step(self, acc: dict) -> int:
        """Compilation happens at the first call, so that is where it fails (no C++ compiler, no
        triton, an unsupported op): then restore the state from before the step and run it eagerly."""
        state = copy.deepcopy(self.state_dict())
        self._compiled = "checked"
        try:
            part = {}
            images = self._iteration(part)
        except DivergedError:  # the model's numbers, not the compiler: eager would diverge too
            raise
        except Exception as e:  # noqa: BLE001 - a real model error recurs below, uncompiled
            self._uncompile(e)
            self._compiled = False
            self._load_state(state)
            for o in self.opts.values():
                o.zero_grad(set_to_none=True)
            return self._iteration(acc)
        acc.update(part)
        return images

    def ema_decay(self) -> float:
        """The EMA's decay at this update. With ``ema_rampup``, min(ema, (1 + t) / (10 + t)) at the
        t-th update: a fixed 0.999 keeps 0.999^t of the initial weights (61% after 500 steps), so a
        short run's EMA copy is mostly the untrained network; the ramp averages over about the last
        tenth of the run until the fixed decay takes over (t ~ 9,000 for 0.999)."""
        decay, t = self.cfg["ema"], self.step
        return min(decay, (1 + t) / (10 + t)) if self.cfg.get("ema_rampup") else decay

    def _update_ema(self) -> None:
        if self.cfg["ema"] <= 0:
            return
        decay = self.ema_decay()
        for name in self.model.ema_nets:
            moving_average_(getattr(self.model, f"{name}_ema"), getattr(self.model, name), decay)

    # -- outputs --------------------------------------------------------------------------
    def write_samples(self) -> Path | None:
        if not self.main:
            return None
        from ..report import save_grid, save_scatter

        path = self.out / "samples" / f"step_{self.step:06d}.png"
        g = torch.Generator().manual_seed(self.cfg["seed"] + 1_000_003)
        if self.spec.kind == "points":
            fake = self.model.sample(2500, seed=self.cfg["seed"] + 1_000_003)
            save_scatter(fake, self.raw.x[:2500], path, title=f"{self.cfg['model']} step {self.step}")
        else:
            if hasattr(self.model, "sample_grid"):  # e.g. translators: input | output | target on fixed images
                images, nrow = self.model.sample_grid(self.cfg["n_samples"])
            else:
                images = self.model.generate_eval(self.model.fixed_inputs(self.cfg["n_samples"], g))
                nrow = getattr(self.model, "grid_nrow", None)
            save_grid(images, path, nrow=nrow)
        if self._tb:
            self._tb.image(path, self.step)
        return path

    def _evaluator(self):
        if getattr(self, "_eval", None) is None:
            from ..metrics.evaluate import Evaluator

            c = self.cfg
            self._eval = Evaluator(c["data"], self.raw.kind, self.raw.x if self.raw.kind == "image" else None,
                                   metrics=c["eval_metrics"], n=c["eval_n"], seed=c["seed"], device=self.device,
                                   features=None if c["eval_features"] == "auto" else c["eval_features"])
            self._eval.settings()  # builds the feature extractor: raises here if it is unavailable
        return self._eval

    def evaluate(self) -> tuple[dict, float]:
        """``eval_*`` metrics for metrics.jsonl, and the seconds taken: of G's EMA copy when the run
        has one, else G (``GANModel.generator_name``, the rule ``ganforge eval`` and ``sample`` follow)."""
        if not self.main:
            return {}, 0.0
        t = time.time()
        res = self._evaluator().evaluate(self.model, use_ema=True)
        res.pop("eval_seconds", None)
        return {f"eval_{k}": v for k, v in res.items()} | {"eval_net": self.model.generator_name()}, time.time() - t

    def _log(self, acc: dict, t0: float, images: int, start: float, extra: dict | None = None) -> dict:
        self._check_finite()  # before a row of NaNs is written
        keys = list(acc)
        values = torch.stack([torch.as_tensor(acc[k][0] / acc[k][1], device=self.device).float() for k in keys]) \
            if keys else None
        if values is not None and self.world > 1:  # the global batch's losses, not rank 0's slice
            values = distributed.mean_over_ranks(values, self.world)
        # The one host sync of the loop: loss values are fetched only when they are logged.
        values = values.tolist() if values is not None else []
        row = {"step": self.step, "time": round(time.time() - start, 3)}
        row.update({k: round(v, 6) for k, v in zip(keys, values)})
        row.update(extra or {})
        if self.nan_skipped:
            row["nan_skipped"] = self.nan_skipped  # a running total
        row["img_per_s"] = round(images / max(time.time() - t0, 1e-9), 1)
        if self.main:
            log = self.out / "metrics.jsonl"
            try:
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
            except OSError as e:  # a full disk: say which file
                raise OSError(e.errno, e.strerror, str(log)) from None
            if self._tb:
                self._tb.scalars(row)
        return row

    # -- the loop -------------------------------------------------------------------------
    def fit(self) -> dict:
        from tqdm.auto import tqdm

        cfg = self.cfg
        if self.step >= cfg["steps"]:
            raise ConfigError(f"run is already at step {self.step}; pass --steps larger than that to go on")
        if self.main:  # a write killed before its rename left these; the run's own files are whole
            remove_temps(self.out, self.out / "checkpoints", self.out / "samples")
        logged = self._trim_log()
        stop = {"flag": False}
        handlers = self._install_signals(stop)
        # The bar where a person watches a terminal; plain lines where stderr goes to a file or pipe.
        show, tty = self.progress and self.main, sys.stderr.isatty()
        bar = tqdm(total=cfg["steps"], initial=self.step, disable=not (show and tty),
                   unit="step", dynamic_ncols=True, desc=cfg["model"])
        plain = monitor.PlainProgress(cfg["model"], cfg["steps"], self.step,
                                      cfg["progress_every"] or cfg["log_every"]) if show and not tty else None
        if cfg.get("tensorboard") and self.main:
            self._tb = monitor.TensorboardLog(self.out, self.step)
        start = time.time() - logged  # the log's clock continues across resumes
        t0, images, acc, last = time.time(), 0, {}, {}
        self.model.train()
        if cfg["eval_every"] and self.main:
            self._evaluator()  # a bad eval setting fails now, not after eval_every steps
        try:
            while self.step < cfg["steps"]:
                images += self.train_step(acc)
                self.step += 1
                bar.update(1)
                evaluating = cfg["eval_every"] and self.step % cfg["eval_every"] == 0
                if self.step % cfg["log_every"] == 0 or self.step == cfg["steps"] or evaluating:
                    extra, eval_s = self.evaluate() if evaluating else ({}, 0.0)
                    last = self._log(acc, t0 + eval_s, images, start, extra)  # img/s counts training only
                    bar.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k.endswith("loss")} |
                                    {"img/s": f"{last['img_per_s']:.0f}"})
                    t0, images, acc = time.time(), 0, {}
                if plain:
                    plain.update(self.step, last)
                if cfg["sample_every"] and self.step % cfg["sample_every"] == 0:
                    self.write_samples()
                if cfg["ckpt_every"] and self.step % cfg["ckpt_every"] == 0:
                    self.save_checkpoint()
                if self.world > 1 and (self.step % cfg["log_every"] == 0 or self.step == cfg["steps"]):
                    # Processes must stop at the same step, so they agree where they already sync.
                    stop["flag"] = distributed.any_rank(stop["flag"], self.device)
                if stop["flag"] and (self.world == 1 or self.step % cfg["log_every"] == 0):
                    self.save_checkpoint()
                    raise Interrupted(self.step, self.out, self.main)
        finally:
            bar.close()
            self._restore_signals(handlers)
            if self._tb:  # what an interrupted run logged reaches the disk
                self._tb.flush()
        self.save_checkpoint()
        return self.finish(last)

    def finish(self, last: dict) -> dict:
        result = {"out": self.out, "step": self.step, "last": last, "nan_skipped": self.nan_skipped}
        if not self.main:
            return result
        from ..report import loss_plot

        result["samples"] = self.write_samples()
        save_generator(self.model, self.out / "generator.safetensors")
        if (self.out / "metrics.jsonl").exists() and loss_plot(self.out / "metrics.jsonl", self.out / "losses.png"):
            result["loss_plot"] = self.out / "losses.png"
        if self._tb:
            self._tb.close()
            result["tensorboard"] = self.out / "tensorboard"
        return result

    def _trim_log(self) -> float:
        """Drop log rows past the checkpoint (they belong to steps a resume will redo); return the
        training time the kept rows have logged."""
        log = self.out / "metrics.jsonl"
        if not (self.main and log.exists()):
            return 0.0
        text = log.read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        n = len(lines)
        try:
            json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:  # a row whose append a kill cut short; its step is redone
            lines.pop()
        rows = [json.loads(line) for line in lines]
        keep = [line for line, row in zip(lines, rows) if row["step"] <= self.step]
        if len(keep) != n or not text.endswith("\n"):  # rows appended later must start a line
            atomic_write_bytes(log, ("\n".join(keep) + "\n" if keep else "").encode())
        return json.loads(keep[-1])["time"] if keep else 0.0

    def _install_signals(self, stop: dict):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if stop["flag"]:  # a second Ctrl-C: stop now; the last checkpoint on disk stays valid
                raise KeyboardInterrupt
            stop["flag"] = True
            if self.main:
                when = "this step" if self.world == 1 else "the next log step, where the processes agree"
                print(f"\nstopping after {when} (Ctrl-C again to stop at once)...", flush=True)

        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, handler)
        return old

    @staticmethod
    def _restore_signals(old) -> None:
        for s, h in (old or {}).items():
            signal.signal(s, h)


def train(model: str | None = None, *, out=None, resume=None, force: bool = False, steps: int | None = None,
          config_file=None, sets: dict | None = None, progress: bool = True, nproc: int = 1, **flags) -> dict:
    """Train a model (or resume a run) and return ``{"out", "step", "last", ...}``.

    ``flags`` are config keys (``data``, ``batch_size``, ``seed``, ...); ``sets`` are the
    ``--set key=value`` overrides, applied last. ``nproc`` > 1 trains data-parallel in that many
    local processes (returning rank 0's result). Under torchrun (WORLD_SIZE > 1) every process
    calls this; they train data-parallel and only rank 0 writes to ``out``.
    """
    if nproc != 1 and distributed.env_world() <= 1:
        return distributed.launch(nproc, train, model, out=out, resume=resume, force=force, steps=steps,
                                  config_file=config_file, sets=sets, progress=progress, **flags)
    info = []
    try:
        with contextlib.ExitStack() as lock:
            result = _train(model, out, resume, force, steps, config_file, sets, progress, flags, info, lock)
        if info:
            # No process leaves the group while another may still be sending to it (a gloo peer that
            # finds its partner gone can abort at exit). Only on success: after a failure the others
            # may be stuck in a collective, and the launcher stops them.
            distributed.barrier()
        return result
    finally:
        if info:
            distributed.cleanup()


def _join(cfg: dict, info: list):
    """Join torchrun's process group (if any); returns Trainer's ``dist`` argument."""
    d = distributed.setup(cfg["device"])
    if d is None:
        return None
    info.append(d)
    return d.rank, d.world


def _lock(out: Path, lock: contextlib.ExitStack) -> None:
    """The process that writes the run (rank 0) holds its directory until training ends."""
    if distributed.env_rank() == 0:
        lock.enter_context(run_lock(out))


def _train(model, out, resume, force, steps, config_file, sets, progress, flags, info, lock) -> dict:
    if resume is not None:
        out = Path(resume)
        if not is_run(out):
            raise RunDirError(f"{out} is not a ganforge run (no config.yaml); nothing to resume")
        if model is not None or flags or sets or config_file:
            raise ConfigError("--resume continues a run with its own settings; only --steps may change")
        _lock(out, lock)
        cfg = run_config(out, **({} if steps is None else {"steps": steps}))
        state = load_checkpoint(out / CKPT) if (out / CKPT).exists() else None
        if state is None:  # stopped before its first checkpoint: nothing to lose by starting again
            print(f"ganforge: {out} has no checkpoint yet; training it from step 0", file=sys.stderr, flush=True)
        trainer = Trainer(cfg, out, resume_state=state, progress=progress, dist=_join(cfg, info))
        distributed.barrier()  # every process has read the run before rank 0 rewrites its config
        if trainer.main:
            C.save_yaml(cfg, out / "config.yaml")
        return trainer.fit()

    if model is None:
        raise ConfigError("name a model to train (see `ganforge list`), or pass --resume DIR")
    cls = get_model_class(model)
    file_layer = C.load_yaml(config_file) if config_file else {}
    file_layer.pop("model", None)
    if steps is not None:
        flags["steps"] = steps
    cfg = C.resolve(cls.defaults, {"model": cls.name}, file_layer, flags, sets or {}, by_kind=cls.defaults_by_kind)
    out = Path(out) if out else _default_out(cfg)
    if _holds_files(out) and not force:  # fail before the slow part
        _prepare_out(out, force)
    # loads data and builds the model: may still fail
    trainer = Trainer(cfg, out, progress=progress, dist=_join(cfg, info))
    distributed.barrier()  # every process has checked `out` before rank 0 writes into it
    if trainer.main:
        _lock(out, lock)  # then look again: another process may have started a run here meanwhile
        _prepare_out(out, force)
        C.save_yaml(cfg, out / "config.yaml")
    distributed.barrier()
    return trainer.fit()
