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


@dataclass
class Phase:
    name: str
    step: Callable[[dict], dict]
    optimizers: tuple[str, ...]
    repeats: int = 1


class GANModel(nn.Module):
    """Base class. Subclasses set the class attributes and implement :meth:`build` and the steps."""

    name: str = ""
    family: str = ""  # foundations | objectives | conditional | translation | advanced
    paper: str = ""  # "Goodfellow et al., Generative Adversarial Nets"
    year: int = 0
    data_kinds: tuple[str, ...] = ("image",)  # which data it trains on: "image", "points"
    needs_labels: bool = False
    defaults: dict = {}
    ema_nets: tuple[str, ...] = ("G",)  # networks that get an EMA copy when ema > 0

    def __init__(self, cfg: dict, spec: DataSpec):
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        # Set by the engine under data parallelism, so that noise is drawn for the global batch
        # and sliced: N processes then see exactly the noise one process would.
        self.rank, self.world = 0, 1
        self.build()

    # -- what a model declares -------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"]),
                "D": self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"])}

    def phases(self) -> list[Phase]:
        return [Phase("D", self.d_step, ("D",), self.cfg["n_critic"]),
                Phase("G", self.g_step, ("G",), self.cfg["g_steps"])]

    def after_phase(self, name: str) -> None:
        """Called after each optimizer update of a phase (WGAN clips its critic here)."""

    # -- the default unconditional GAN step ------------------------------------------------
    def d_step(self, batch: dict) -> dict:
        real = batch["x"]
        fake = self.generate(self.sample_inputs(len(real)))
        d_real, d_fake = self.D(real), self.D(fake)
        loss = losses.d_loss(self.cfg["loss"], d_real, d_fake)
        return {"loss": loss, "D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}

    def g_step(self, batch: dict) -> dict:
        fake = self.generate(self.sample_inputs(len(batch["x"])))
        return {"loss": losses.g_loss(self.cfg["loss"], self.D(fake))}

    # -- sampling --------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator | None = None, **cond) -> dict:
        """G's inputs for ``n`` samples: by default ``{"z": N(0, I)}`` of size z_dim."""
        return {"z": self.randn(n, self.cfg["z_dim"], generator=generator)}

    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict:
        """Inputs for the sample grids written during training (conditional models order them)."""
        return self.sample_inputs(n, generator)

    def generate(self, inputs: dict, net: nn.Module | None = None) -> torch.Tensor:
        return (net or self.G)(inputs["z"])

    def generator_net(self, use_ema: bool = True) -> nn.Module:
        return getattr(self, "G_ema", None) if use_ema and hasattr(self, "G_ema") else self.G

    @torch.no_grad()
    def sample(self, n: int = 64, seed: int | None = 0, batch_size: int = 500, use_ema: bool = True,
               **cond) -> torch.Tensor:
        """``n`` samples on the CPU, images in [-1, 1]; the same seed gives the same samples."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        inputs = self.sample_inputs(n, g, **cond)
        net = self.generator_net(use_ema)
        was_training = net.training
        net.eval()
        try:
            chunks = []
            for i in range(0, n, batch_size):
                part = {k: v[i:i + batch_size] for k, v in inputs.items()}
                chunks.append(self.generate(part, net).float().cpu())
        finally:
            net.train(was_training)
        return torch.cat(chunks)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def adam(self, params, lr: float, betas=None):
        betas = tuple(betas or self.cfg["betas"])
        kw = {"foreach": True} if self.device.type != "cpu" else {}
        return torch.optim.Adam(params, lr=lr, betas=betas, **kw)

    def _global(self, fn, n: int, *shape, generator=None, **kw):
        """Draw for the global batch, keep this process's slice (see ``rank``/``world``)."""
        if generator is not None:  # sampling/grids: drawn on the CPU, identical on every device
            return fn(n, *shape, generator=generator, **kw).to(self.device)
        if self.world == 1:
            return fn(n, *shape, device=self.device, **kw)
        full = fn(n * self.world, *shape, device=self.device, **kw)
        return full[self.rank * n:(self.rank + 1) * n]

    def randn(self, n: int, *shape, generator=None):
        return self._global(torch.randn, n, *shape, generator=generator)

    def rand(self, n: int, *shape, generator=None):
        return self._global(torch.rand, n, *shape, generator=generator)

    def randint(self, high: int, n: int, *shape, generator=None):
        return self._global(lambda *s, **kw: torch.randint(high, s, **kw), n, *shape, generator=generator)
