"""The model interface the training engine drives.

A model declares its networks (as attributes under the paper's names: ``G``, ``D``, ``Q``, ...),
its optimizers, and its training phases; the engine owns everything else (the loop, devices,
AMP, data parallelism, EMA, logging, sampling, checkpoints and resume).

A phase is one kind of update, e.g. "D" or "G": a function from a batch to a dict of scalar
tensors whose ``"loss"`` entry is minimised by the optimizers the phase names. One training
step ("iteration") runs each active phase in order, each ``repeats`` times. The phases of an
iteration share one batch (``Phase.fresh`` draws a new one per repeat instead) and one
``model.ctx`` dict, which the engine empties at the start of every iteration: what one phase
computes (G(x) in pix2pix's D step) the next can reuse (``share``/``reuse``). The default is
WGAN's schedule, ``n_critic`` D updates then ``g_steps`` G updates, each on a fresh batch.

A model that grows (ProGAN) changes its networks, optimizers or batch size in ``on_step`` and
says what changed (``Change``); the engine rebuilds what it derived from them.
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
    # Draw a new batch at each repeat instead of sharing the iteration's (WGAN's critic loop);
    # the new batch is then the one later phases share.
    fresh: bool = False
    # Runs at steps start, start + every, ... before stop (lazy regularisation, staged training).
    every: int = 1
    start: int = 0
    stop: int | None = None

    def active(self, step: int) -> bool:
        return self.start <= step and (self.stop is None or step < self.stop) and (step - self.start) % self.every == 0


@dataclass
class Change:
    """What ``GANModel.on_step`` changed, so that the engine rebuilds only what depends on it."""
    nets: bool = False  # networks added or replaced: phases, EMA copies, DDP and compiled nets are rebuilt
    optimizers: bool = False  # model.optimizers() is called again: fresh optimizer state
    batch_size: int | None = None  # the new global batch size

    def __bool__(self) -> bool:
        return self.nets or self.optimizers or self.batch_size is not None


def batch_len(batch: dict) -> int:
    """The number of samples a step makes for ``batch``: a real batch's length, or the ``n`` the
    engine hands a phase that reads no data (``Phase.data``)."""
    if "n" in batch:
        return batch["n"]
    # translation batches hold A and B (of equal length) instead of x
    return len(batch["x"] if "x" in batch else next(iter(batch.values())))


class GANModel(nn.Module):
    """Base class. Subclasses set the class attributes and implement :meth:`build` and the steps."""

    name: str = ""
    family: str = ""  # foundations | objectives | conditional | translation | advanced
    paper: str = ""  # "Goodfellow et al., Generative Adversarial Nets"
    year: int = 0
    data_kinds: tuple[str, ...] = ("image",)  # which data it trains on: "image", "points"
    needs_labels: bool = False
    defaults: dict = {}
    # Defaults for one kind of data, over ``defaults`` and under the user's settings (config.resolve):
    # {"points": {...}} for the 2-D mixtures, from the authors' own toy code where there is one, so
    # that a first run with defaults is a fair picture of the model.
    defaults_by_kind: dict[str, dict] = {}
    # Values that a run recorded before a setting existed must take when its default today would
    # change how that run trains (e.g. {"c1_invariance": 0.0}); other missing settings get defaults.
    legacy_defaults: dict = {}
    ema_nets: tuple[str, ...] = ("G",)  # networks that get an EMA copy (``{name}_ema``) when ema > 0
    generator: str = "G"  # the network that samples (and is saved and measured)
    # Which STEP_OPTIONS a model's own d_step/g_step implement (with the helpers below); the
    # default steps implement all of them. Any other option that is on is refused when built.
    step_options: tuple[str, ...] = ()
    # Which of `ganforge sample`'s model-specific flags the model takes: "truncation" (its
    # sample_inputs accepts truncation=), "mix" (it has mixing_grid(seed, use_ema)), "styles" (it
    # has translate_styles(x, direction, k, style_images, use_ema, seed) -> (N, K, C, H, W)).
    sample_options: tuple[str, ...] = ()
    # How `ganforge eval` measures the model (run_eval.PROTOCOLS): "samples" (samples from noise
    # against the real data, also during training with eval_every), or, only after training,
    # "translation" (outputs against the test pairs), "pairs" (CoGAN's two images from one z),
    # "restoration" (beside bicubic / mean fill), "text" (agreement with held-out captions).
    evaluation: str = "samples"

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
        self.ctx: dict = {}  # what one phase leaves for the next in the same iteration
        if self.evaluation != "samples" and cfg.get("eval_every"):
            # The engine's evaluator measures samples drawn from noise; these need their own protocol.
            raise ConfigError(f"{self.name} is measured by `ganforge eval RUN` ({self.evaluation} protocol), not "
                              "during training; eval_every does not apply to it")
        self.build()
        self._spectral_norm()
        self._setup_objective()

    @staticmethod
    def fit_image_size(native: int) -> int:
        """The image size to train at when ``image_size`` is unset and the data's own is ``native``
        (a growing model needs a power of two); by default the data's own."""
        return native

    # -- what a model declares -------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"]),
                "D": self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"])}

    def phases(self) -> list[Phase]:
        return [Phase("D", self.d_step, ("D",), self.cfg["n_critic"], keep_graph=("G",) if self.reuses_fake else (),
                      fresh=True),
                Phase("G", self.g_step, ("G",), self.cfg["g_steps"], data=self.g_reads_data, fresh=True)]

    def on_step(self, step: int) -> Change | None:
        """Called by the engine before iteration ``step``; a model that grows changes its networks,
        optimizers or batch size here and returns a ``Change``. On resume the engine calls it again
        at each step where it returned one, in order, before loading the checkpoint: it must depend
        only on ``step`` and on what earlier calls did."""
        return None

    @property
    def g_reads_data(self) -> bool:
        """Whether the G step looks at real images (feature matching does); else only at the batch size."""
        return bool(self.cfg.get("feature_matching"))

    @classmethod
    def data_options(cls, cfg: dict) -> dict:
        """Options the engine loads the training data with, following from the settings (a
        translator's ``direction``)."""
        return {}

    def loader_augment(self):
        """The loader's ``augment`` (e.g. ``data.JointCrop``, pix2pix's jitter), or None."""
        return None

    def prepare(self, raw) -> None:
        """Called by the engine with the training data (``RawData``) once the model is built and
        before a checkpoint loads into it, for a model that keeps part of its data (SGAN's labelled
        subset). Models never load data themselves."""

    # True: the engine also calls prepare_grid() with the held-out split (translators' grids).
    grid_from_held_out = False

    def prepare_grid(self, held_out) -> None:
        """Called with the held-out split (``RawData``, e.g. ``mnist:test``) when the class sets
        ``grid_from_held_out`` and the data has one: images for the sample grids."""

    @staticmethod
    def _versions(*nets: nn.Module) -> tuple:
        # every in-place change of a parameter (an optimizer step, a load) bumps its version
        return tuple(p._version for net in nets for p in net.parameters())

    def share(self, key: str, value, *nets: nn.Module) -> None:
        """Leave ``value`` (computed by ``nets``) in this iteration's ``ctx`` for a later phase."""
        self.ctx[key] = (value, self._versions(*nets))

    def reuse(self, key: str, *nets: nn.Module):
        """The value a phase shared under ``key``, or None once any of ``nets`` has changed since
        (e.g. steps called by hand with an update in between): a stale output is never reused."""
        value, versions = self.ctx.pop(key, (None, None))
        return value if value is not None and versions == self._versions(*nets) else None

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
            self.share("fake", fake, self.G)  # still attached to G's graph (Phase.keep_graph), for g_step
            fake = fake.detach()
        real = self.r1_input(real)
        d_real, d_fake = self.D(real), self.D(fake)
        loss = self.d_adversarial(d_real, d_fake)
        out = {"D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}
        terms = {**self.d_regularizer(real, fake), **self.r1(d_real, real)}
        for name, term in terms.items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss + self.history_penalty("D"), **out}

    def g_step(self, batch: dict) -> dict:
        fake = self.reuse("fake", self.G)
        if fake is None or len(fake) != batch_len(batch):
            fake = self.generate(self.sample_inputs(batch_len(batch)))
        if self.cfg.get("feature_matching"):
            loss = self.feature_matching(batch["x"], fake)
        else:
            loss = self.g_adversarial(self.D(fake))
        return {"loss": loss + self.history_penalty("G")}

    # -- objective helpers, for the default steps and a model's own ---------------------------
    def d_adversarial(self, d_real, d_fake):
        """D's loss of the configured kind (``loss``), with one-sided ``label_smoothing``."""
        return losses.d_loss(self.cfg["loss"], d_real, d_fake, **self._d_loss_kwargs())

    def g_adversarial(self, d_fake):
        return losses.g_loss(self.cfg["loss"], d_fake, c=self.cfg.get("c", 1.0))

    def r1_input(self, real):
        """``real``, made to require grad when R1 is on: pass it to D, then ``r1(d_real, real)``."""
        return real.detach().requires_grad_(True) if self.cfg.get("r1_gamma", 0.0) else real

    def r1(self, d_real, real) -> dict:
        """``{"R1": gamma/2 E||grad D(x)||^2}`` when ``r1_gamma`` > 0, else ``{}``."""
        gamma = self.cfg.get("r1_gamma", 0.0)
        if not gamma:
            return {}
        # Penalising D's slope on the data keeps it from oscillating around the equilibrium
        # (Mescheder et al. 2018, "Which training methods for GANs do actually converge?").
        return {"R1": 0.5 * gamma * losses.r1_penalty(d_real, real, self.grad_scaler)}

    def gradient_penalty(self, real, fake, D: nn.Module | None = None, **d_kwargs):
        """WGAN-GP's penalty at interpolates of ``real`` and ``fake`` (without its weight)."""
        # alpha drawn for the global batch (GANModel.rand), so several processes train what one does
        alpha = self.rand(len(real)).to(real.dtype)
        return losses.gradient_penalty(D or self.D, real, fake, alpha=alpha, scaler=self.grad_scaler, **d_kwargs)

    def feature_matching(self, real, fake, features: Callable | None = None):
        """Salimans et al. 2016, eq. 4: ||E f(x) - E f(G(z))||^2 on D's last hidden layer (``features``)."""
        features = features or self.D.features
        with torch.no_grad():
            f_real = features(real).float().mean(0)
        return (f_real - features(fake).float().mean(0)).pow(2).sum()

    # -- objective options -----------------------------------------------------------------
    def _setup_objective(self) -> None:
        c = self.cfg
        if "loss" in c:
            losses.check_loss(c["loss"])
        on = [k for k in STEP_OPTIONS if c.get(k)]
        if not on:
            return
        own = any(getattr(type(self), f) is not getattr(GANModel, f) for f in ("d_step", "g_step"))
        missing = [k for k in on if own and k not in self.step_options]
        if missing:
            raise ConfigError(f"{self.name}'s own training steps do not implement {', '.join(missing)}")
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
            if c.get("spectral_norm"):  # the new head is a layer of D like the others
                from ..nn.spectral import apply_spectral_norm

                apply_spectral_norm(self.D.head)
        if c.get("historical_averaging"):
            from ..nn import HistoricalAverage

            self.hist_avg = nn.ModuleDict({"G": HistoricalAverage(self.G), "D": HistoricalAverage(self.D)})

    @property
    def discriminators(self) -> tuple[str, ...]:
        """The names of the model's discriminators: ``D`` and any ``D_*`` (CycleGAN's D_A, D_B)."""
        return tuple(n for n, _ in self.named_children() if n == "D" or n.startswith("D_"))

    def _spectral_norm(self) -> None:
        """``spectral_norm``: every conv/linear layer of each discriminator spectrally normalised
        (Miyato et al. 2018), where the discriminator is one of the shared blocks that allow it."""
        if not self.cfg.get("spectral_norm"):
            return
        from ..nn.spectral import apply_spectral_norm, supports_spectral_norm

        names = self.discriminators
        bad = [f"{n} ({type(getattr(self, n)).__name__})" for n in names
               if not supports_spectral_norm(getattr(self, n))]
        if not names or bad:
            raise ConfigError(f"spectral_norm=true is for a D built from the shared blocks (DCGANDiscriminator, "
                              f"MLPCritic, PatchDiscriminator); {self.name}'s {', '.join(bad) or 'D'} is not")
        for n in names:
            apply_spectral_norm(getattr(self, n))

    def _d_loss_kwargs(self) -> dict:
        s, a, b = self.cfg.get("label_smoothing", 0.0), self.cfg.get("a", 0.0), self.cfg.get("b", 1.0)
        # One-sided smoothing moves only the real target, towards the fake one (a for ls, 0 otherwise).
        return {"real_label": 1.0 - s, "a": a, "b": b - s * (b - a)}

    def history_penalty(self, name: str):
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
        return (net or getattr(self, self.generator))(inputs["z"])

    def generator_name(self, use_ema: bool = True) -> str:
        """The one rule for which network samples and is measured: G's EMA copy when the run
        has one and ``use_ema`` (the default everywhere), else G."""
        ema = f"{self.generator}_ema"
        return ema if use_ema and hasattr(self, ema) else self.generator

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
