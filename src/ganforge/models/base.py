"""The model interface the training engine drives.

A model declares its networks (as attributes under the paper's names: ``G``, ``D``, ``Q``, ...),
its optimizers, and its training phases; the engine owns everything else (the loop, devices,
AMP, data parallelism, EMA, logging, sampling, checkpoints and resume).

A phase is one kind of update, e.g. "D" or "G": a function from a batch to a dict of scalar
tensors whose ``"loss"`` entry is minimised by the optimizers the phase names. One training
step ("iteration") runs each phase in order, each ``repeats`` times with a fresh batch; the
default is WGAN's schedule, ``n_critic`` D updates then ``g_steps`` G updates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import losses
from ..data import DataSpec
from ..errors import ConfigError
from ..nn import evaluating

# Options of the default d_step/g_step (Salimans et al. 2016); config keys in config.ENGINE_DEFAULTS.
IMPROVED_GAN = ("feature_matching", "minibatch_discrimination", "label_smoothing", "historical_averaging")
# Every option that acts inside the default steps (R1: Mescheder et al. 2018).
STEP_OPTIONS = (*IMPROVED_GAN, "r1_gamma")


@dataclass
class Phase:
    name: str
    step: Callable[[dict], dict]
    optimizers: tuple[str, ...]
    repeats: int = 1
    # Optimizers whose networks keep their autograd graph during this phase without being updated
    # by it, so that a later phase can backpropagate through outputs computed here (see reuse_fake).
    keep_graph: tuple[str, ...] = ()
    # Whether the step reads a real batch. One that does not (a G step that needs only the batch's
    # size) is handed ``{"n": size}``: no real image is drawn that nobody looks at, so an epoch is
    # an epoch of what D sees, and img/s counts the images used.
    data: bool = True


def batch_len(batch: dict) -> int:
    """The number of samples a step makes for ``batch``: a real batch's length, or the ``n`` the
    engine hands a phase that reads no data (``Phase.data``)."""
    return batch["n"] if "n" in batch else len(batch["x"])


class GANModel(nn.Module):
    """Base class. Subclasses set the class attributes and implement :meth:`build` and the steps."""

    name: str = ""
    family: str = ""  # foundations | objectives | conditional | translation | advanced
    paper: str = ""  # "Goodfellow et al., Generative Adversarial Nets"
    year: int = 0
    data_kinds: tuple[str, ...] = ("image",)  # which data it trains on: "image", "points"
    needs_labels: bool = False
    defaults: dict = {}
    # Values that a run recorded before a setting existed must take when its default today would
    # change how that run trains (e.g. {"c1_invariance": 0.0}); other missing settings get defaults.
    legacy_defaults: dict = {}
    ema_nets: tuple[str, ...] = ("G",)  # networks that get an EMA copy when ema > 0

    def __init__(self, cfg: dict, spec: DataSpec):
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        # Set by the engine under data parallelism, so that noise is drawn for the global batch
        # and sliced: N processes then see exactly the noise one process would.
        self.rank, self.world = 0, 1
        # Set by the engine to its GradScaler: penalties on D's input-gradients (R1, WGAN-GP) scale
        # them too, or float16 would underflow them (losses._input_grad).
        self.grad_scaler = None
        self.build()
        self._setup_objective()

    # -- what a model declares -------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"]),
                "D": self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"])}

    def phases(self) -> list[Phase]:
        return [Phase("D", self.d_step, ("D",), self.cfg["n_critic"], keep_graph=("G",) if self.reuses_fake else ()),
                Phase("G", self.g_step, ("G",), self.cfg["g_steps"], data=self.g_reads_data)]

    @property
    def g_reads_data(self) -> bool:
        """Whether the G step looks at real images (feature matching does); else only at the batch size."""
        return bool(self.cfg.get("feature_matching"))

    def prepare(self, raw) -> None:
        """Called by the engine with the training data (``RawData``) once the model is built and
        before a checkpoint loads into it, for a model that keeps part of its data (SGAN's labelled
        subset). Models never load data themselves."""

    @staticmethod
    def _versions(net: nn.Module) -> tuple:
        # every in-place change of a parameter (an optimizer step, a load) bumps its version
        return tuple(p._version for p in net.parameters())

    @property
    def reuses_fake(self) -> bool:
        """Whether the G step backpropagates through the D step's G(z) instead of running G again.

        G is not updated between the two, so the gradient is exactly that of a fresh G(z) on the same z
        (as in the DCGAN reference loop): one forward pass of G per iteration is saved. Only with one
        D and one G update per iteration and the default steps (``reuse_fake`` in the config).
        """
        c = self.cfg
        return (bool(c.get("reuse_fake")) and c["n_critic"] == 1 and c["g_steps"] == 1
                and type(self).d_step is GANModel.d_step and type(self).g_step is GANModel.g_step)

    def after_phase(self, name: str) -> None:
        """Called after each optimizer update of a phase (WGAN clips its critic here).

        Subclasses that override it call ``super().after_phase(name)``.
        """
        if hasattr(self, "hist_avg") and name in self.hist_avg:
            self.hist_avg[name].update(getattr(self, name))

    def d_regularizer(self, real, fake) -> dict:
        """Extra terms of D's loss in the default d_step, by name (WGAN-GP's gradient penalty;
        ``r1_gamma`` adds R1 for any model with the default steps)."""
        return {}

    # -- the default unconditional GAN step ------------------------------------------------
    def d_step(self, batch: dict) -> dict:
        real = batch["x"]
        fake = self.generate(self.sample_inputs(len(real)))
        if self.reuses_fake:
            # Still attached to G's graph (Phase.keep_graph), for g_step; with G's parameter versions,
            # so that it is never reused after G has changed (e.g. steps called by hand).
            self._fake = (fake, self._versions(self.G))
            fake = fake.detach()
        r1 = self.cfg.get("r1_gamma", 0.0)
        if r1:
            real = real.detach().requires_grad_(True)
        d_real, d_fake = self.D(real), self.D(fake)
        loss = losses.d_loss(self.cfg["loss"], d_real, d_fake, **self._d_loss_kwargs())
        out = {"D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}
        terms = self.d_regularizer(real, fake)
        if r1:
            # Penalising D's slope on the data keeps it from oscillating around the equilibrium
            # (Mescheder et al. 2018, "Which training methods for GANs do actually converge?").
            terms["R1"] = 0.5 * r1 * losses.r1_penalty(d_real, real, self.grad_scaler)
        for name, term in terms.items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss + self._history_penalty("D"), **out}

    def g_step(self, batch: dict) -> dict:
        cached, self._fake = getattr(self, "_fake", None), None
        if cached is not None and len(cached[0]) == batch_len(batch) and cached[1] == self._versions(self.G):
            fake = cached[0]
        else:
            fake = self.generate(self.sample_inputs(batch_len(batch)))
        if self.cfg.get("feature_matching"):
            # Salimans et al. 2016, eq. 4: ||E f(x) - E f(G(z))||^2 on D's last hidden layer.
            with torch.no_grad():
                f_real = self.D.features(batch["x"]).float().mean(0)
            loss = (f_real - self.D.features(fake).float().mean(0)).pow(2).sum()
        else:
            loss = losses.g_loss(self.cfg["loss"], self.D(fake), c=self.cfg.get("c", 1.0))
        return {"loss": loss + self._history_penalty("G")}

    # -- objective options -----------------------------------------------------------------
    def _setup_objective(self) -> None:
        c = self.cfg
        if "loss" in c:
            losses.check_loss(c["loss"])
        on = [k for k in STEP_OPTIONS if c.get(k)]
        if not on:
            return
        own = [f for f in ("d_step", "g_step") if getattr(type(self), f) is not getattr(GANModel, f)]
        if own:
            raise ConfigError(f"{self.name} has its own training steps, so {', '.join(on)} (which act in the "
                              "default GAN steps) cannot be used with it")
        if c.get("label_smoothing") and c.get("loss") not in (*losses.CLASSIFIER_LOSSES, "ls"):
            raise ConfigError(f"label_smoothing needs a loss with real/fake targets "
                              f"({', '.join(losses.CLASSIFIER_LOSSES)} or ls), not {c.get('loss')}")
        head = getattr(self.D, "head", None)
        if (c.get("feature_matching") or c.get("minibatch_discrimination")) and not (
                hasattr(self.D, "features") and isinstance(head, nn.Linear)):
            raise ConfigError(f"{self.name}'s D has no features()/linear head, which feature_matching and "
                              "minibatch_discrimination need")
        if c.get("minibatch_discrimination"):
            from ..nn import DCGANDiscriminator, MinibatchDiscrimination, dcgan_init

            mbd = MinibatchDiscrimination(head.in_features, c["mbd_kernels"], c["mbd_kernel_dim"])
            self.D.head = nn.Sequential(mbd, nn.Linear(head.in_features + c["mbd_kernels"], head.out_features))
            if isinstance(self.D, DCGANDiscriminator):
                # Built after D's own init, the head would otherwise keep PyTorch's default scale
                # while the layers feeding it have the DCGAN one.
                dcgan_init(self.D.head)
        if c.get("historical_averaging"):
            from ..nn import HistoricalAverage

            self.hist_avg = nn.ModuleDict({"G": HistoricalAverage(self.G), "D": HistoricalAverage(self.D)})

    def _d_loss_kwargs(self) -> dict:
        s, a, b = self.cfg.get("label_smoothing", 0.0), self.cfg.get("a", 0.0), self.cfg.get("b", 1.0)
        # One-sided smoothing moves only the real target, towards the fake one (a for ls, 0 otherwise).
        return {"real_label": 1.0 - s, "a": a, "b": b - s * (b - a)}

    def _history_penalty(self, name: str):
        if not hasattr(self, "hist_avg"):
            return 0.0
        return self.cfg["historical_averaging"] * self.hist_avg[name].penalty(getattr(self, name))

    # -- sampling --------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator | None = None, **cond) -> dict:
        """G's inputs for ``n`` samples: by default ``{"z": N(0, I)}`` of size z_dim."""
        return {"z": self.randn(n, self.cfg["z_dim"], generator=generator)}

    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict:
        """Inputs for the sample grids written during training (conditional models order them)."""
        return self.sample_inputs(n, generator)

    def generate(self, inputs: dict, net: nn.Module | None = None) -> torch.Tensor:
        return (net or self.G)(inputs["z"])

    def generator_name(self, use_ema: bool = True) -> str:
        """The one rule for which network samples and is measured: G's EMA copy when the run
        has one and ``use_ema`` (the default everywhere), else G."""
        return "G_ema" if use_ema and hasattr(self, "G_ema") else "G"

    def generator_net(self, use_ema: bool = True) -> nn.Module:
        return getattr(self, self.generator_name(use_ema))

    @torch.no_grad()
    def sample(self, n: int = 64, seed: int | None = 0, batch_size: int = 500, use_ema: bool = True,
               **cond) -> torch.Tensor:
        """``n`` samples on the CPU, images in [-1, 1]; the same seed gives the same samples."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.generate_eval(self.sample_inputs(n, g, **cond), use_ema, batch_size)

    @torch.no_grad()
    def generate_eval(self, inputs: dict, use_ema: bool = True, batch_size: int = 500) -> torch.Tensor:
        """G's output for ``inputs`` in eval mode (batch norm on running statistics), on the CPU, in chunks."""
        net = self.generator_net(use_ema)
        n = len(next(iter(inputs.values())))
        with evaluating(net):
            return torch.cat([self.generate({k: v[i:i + batch_size] for k, v in inputs.items()}, net).float().cpu()
                              for i in range(0, n, batch_size)])

    # -- helpers ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def adam(self, params, lr: float, betas=None):
        betas = tuple(betas or self.cfg["betas"])
        # Fused Adam: one kernel over all tensors instead of ~10 per tensor; on the CPU it is the
        # largest single speed-up of the engine (benchmarks/fastpath.py), and on CUDA it lets the
        # fp16 GradScaler skip its per-step host sync.
        kw = {"fused": True} if self.device.type in ("cpu", "cuda") else {"foreach": True}
        # A model may set its own ``adam_eps`` (SGAN does: the authors' Adam has a larger effective eps).
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=self.cfg.get("adam_eps", 1e-8), **kw)

    def _global(self, fn, n: int, *shape, generator=None, **kw):
        """Draw for the global batch, keep this process's slice (see ``rank``/``world``)."""
        if generator is not None:  # sampling/grids: drawn on the CPU, identical on every device
            return fn(n, *shape, generator=generator, **kw).to(self.device)
        if self.world == 1:
            return fn(n, *shape, device=self.device, **kw)
        full = fn(n * self.world, *shape, device=self.device, **kw)
        return full[self.rank * n:(self.rank + 1) * n]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The global batch of which ``x`` is this process's slice, in rank order: what one process
        training on the whole batch would hold. ``x`` itself in one process."""
        if self.world == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world)]
        torch.distributed.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    def randn(self, n: int, *shape, generator=None):
        return self._global(torch.randn, n, *shape, generator=generator)

    def rand(self, n: int, *shape, generator=None):
        return self._global(torch.rand, n, *shape, generator=generator)

    def randint(self, high: int, n: int, *shape, generator=None):
        return self._global(lambda *s, **kw: torch.randint(high, s, **kw), n, *shape, generator=generator)
