"""AAE: Makhzani et al., "Adversarial Autoencoders", arXiv 1511.05644, 2016.

What is different from GAN: the adversary never sees an image. An autoencoder (encoder ``E``,
decoder ``G``) is trained to reconstruct, and a discriminator ``D`` on *codes* tells samples of
a chosen prior p(z) from codes E(x) of real images; E, as D's generator, learns to make its code
distribution q(z) look like p(z). The decoder then turns prior samples into images. Each
mini-batch runs the paper's two phases in turn:

- reconstruction (phase ``recon``): E and G minimise the reconstruction error of x;
- regularisation: D learns prior samples against E(x) (phase ``D``), then E is updated to fool
  D (phase ``E``). G is never touched by the adversary: only E is matched to the prior.

Priors (``prior``): ``gaussian`` N(0, I); ``mixture``, 10 elongated 2-D Gaussians around a circle
(the paper's Figure 2 middle); ``swissroll``, a 2-D spiral of two turns with a little noise
(Figure 2 right). The last two are 2-D (``z_dim`` 2). Each is made from N(0, 1) and U(0, 1)
draws (``prior_from_noise``), so a sample's component is known (``component``: the mixture's
Gaussian, the roll's tenth along its length); the unsupervised model matches the whole prior
and ignores it (the paper's Figure 4 instead uses labels to tie each class to one component;
that is not implemented here).

Variants (``variant``):

- ``unsupervised``: as above.
- ``supervised`` (the paper's Section 4): G reads the one-hot label next to z, so the label
  carries the class and z is free to carry only style; sampling takes ``label=``.
- ``semi`` (Section 5): E has two heads, a categorical code y = softmax(logits) and a style
  code z, and G reads [z, y]. Two adversaries: ``D_cat`` tells one-hot samples of a uniform
  categorical from y, and ``D_z`` tells N(0, I) from z, so y is pushed towards one-hot codes of
  balanced classes without any label. A third phase ``C`` trains E's categorical head by
  cross-entropy on the labelled subset only (``labels_per_class`` per class, drawn from the
  seed exactly as SGAN draws it: ``models/labelled.py``). ``classify(x)`` is argmax y, so
  ``ganforge eval`` reports held-out accuracy as for SGAN. ``labels_only=true`` trains the same
  E on the labelled subset alone (phase ``C`` only), the baseline.

``adversary=false`` drops the regularisation phase(s): the same networks as a plain
autoencoder, the baseline for how well q(z) matches p(z) (``metrics/mmd.py``).

Networks: MLPs with ReLU, as in the paper's MNIST experiments (two hidden layers of 1000 units
each for E, G and D by default; ``e_hidden``, ``g_hidden``, ``d_hidden``). G ends in a sigmoid,
read as pixel probabilities for the reconstruction error (``recon=bce``, the default; ``mse``
squared error in [-1, 1]). The paper trains with SGD and momentum; here every phase has its own
Adam (lr ``lr_ae`` for reconstruction, ``lr_d`` for D, ``lr_e`` for E as the generator and
``lr_c`` for the classification phase), all 1e-3 except ``lr_ae`` for ``variant=semi``:
``SEMI_LR_AE`` (2e-3). For that variant the reconstruction phase is what regularises the classifier
most: in 2,000-step probes on MNIST with 100 labels the test accuracy went 0.83 / 0.89 / 0.92 / 0.88
at ``lr_ae`` 3e-4 / 1e-3 / 2e-3 / 4e-3 (weaker adversaries, ``cat_weight``, noise and shift moved it
by 1-2 points, one seed each; a slower ``lr_c`` cost 16), and in 10,000-step runs 2e-3 was
ahead of 1e-3 at every measurement (0.956 against 0.938 at the end; docs/encoders.md).
``cat_weight`` (1) weights the categorical adversary's term in E's phase: how hard y is pushed
towards one-hot codes. ``input_noise`` (Gaussian noise on E's input, std on the [0, 1] pixel
scale) and ``shift`` (random translation by up to that many pixels of every real image E reads, the
target of the reconstruction included) regularise the semi-supervised classifier; they are on
only for ``variant=semi`` unless set (0.3 and 2, as SGAN here).

The paper's optimisation, as a setting: ``optimizer=sgd`` is SGD with momentum ``momentum_ae``
(0.9) for the reconstruction and classification costs and ``momentum_adv`` (0.1) for both players
of the adversarial games, at the paper's initial rates for semi-supervised MNIST (``SGD_LR``:
0.01 reconstruction, 0.1 the rest) unless set, with the reconstruction error summed over each
image's pixels (the scale those rates are for; Adam keeps the mean). ``init_std`` draws every
weight from N(0, init_std^2) with zero biases (a reimplementation of the paper uses 0.01); None
keeps PyTorch's. In this implementation neither is better than the Adam default in 2,000-step
probes (the paper's rates diverge with PyTorch's initialisation, and with init_std=0.01 D_cat does
not learn in that time; docs/encoders.md). ``recon_labelled`` (a reference implementation's
addition, not the paper's) also reconstructs a batch of the labelled images from their true
one-hot label and E's style code in the reconstruction phase.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, closest
from ..nn import MLP, evaluating, init_weights, random_shift
from ..registry import register
from .base import GANModel, Phase, batch_len
from .encoding import Encoding
from .labelled import LabelledSubset

PRIORS = ("gaussian", "mixture", "swissroll")
VARIANTS = ("unsupervised", "supervised", "semi")
RECON = ("bce", "mse")
OPTIMIZERS = ("adam", "sgd")
# optimizer=sgd: the paper's initial rates for semi-supervised MNIST, as recalled from its appendix
# (a public reimplementation cuts the first two to 0.001 and 0.01 after 50 epochs, i.e. 30,000 steps
# of 100 images, and by 10 again after 1000; here the engine's lr_decay schedules them instead).
SGD_LR = {"lr_ae": 0.01, "lr_d": 0.1, "lr_e": 0.1, "lr_c": 0.1}
N_COMPONENTS = 10
# variant=semi's reconstruction rate: twice the other phases' (docs/encoders.md, "(2) Semi-supervised").
SEMI_LR_AE = 2e-3
# The mixture: component k centred at radius MIXTURE_RADIUS, angle 2 pi k / 10, stretched along
# the radius as in the paper's Figure 2 (std 1 radially, 0.25 across).
MIXTURE_RADIUS, MIXTURE_STD = 4.0, (1.0, 0.25)
# The swiss roll: SWISS_TURNS turns out to SWISS_RADIUS, with isotropic noise of SWISS_NOISE.
SWISS_TURNS, SWISS_RADIUS, SWISS_NOISE = 2.0, 4.0, 0.1


def prior_from_noise(kind: str, eps: torch.Tensor, u: torch.Tensor):
    """Samples ``(z, component)`` of prior ``kind`` made from ``eps`` ~ N(0, I) (N, D) and ``u`` ~
    U(0, 1) (N,). ``component`` (N,) is the mixture's Gaussian or the swiss roll's tenth (by
    length from the centre), each with probability 1/10; None for the Gaussian."""
    if kind == "gaussian":
        return eps, None
    k = (u * N_COMPONENTS).long().clamp_(max=N_COMPONENTS - 1)
    if kind == "mixture":
        angle = 2 * math.pi * k.to(eps.dtype) / N_COMPONENTS
        r = MIXTURE_RADIUS + MIXTURE_STD[0] * eps[:, 0]
        t = MIXTURE_STD[1] * eps[:, 1]
        cos, sin = torch.cos(angle), torch.sin(angle)
        return torch.stack([r * cos - t * sin, r * sin + t * cos], 1), k
    if kind == "swissroll":
        # sqrt(u): the roll's length grows with the radius, so this keeps the density per unit
        # of length even, not crowded at the centre.
        s = u.to(eps.dtype).sqrt()
        angle, r = 2 * math.pi * SWISS_TURNS * s, SWISS_RADIUS * s
        return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1) + SWISS_NOISE * eps, k
    raise ConfigError(f"unknown prior {kind!r}{closest(str(kind), PRIORS)}; choose from {', '.join(PRIORS)}")


def sample_prior(kind: str, n: int, dim: int = 2, generator: torch.Generator | None = None):
    """``n`` samples ``(z, component)`` of a prior, on the CPU (for measurements and figures)."""
    eps = torch.randn(n, dim, generator=generator)
    return prior_from_noise(kind, eps, torch.rand(n, generator=generator))


class Encoder(nn.Module):
    """Images -> codes: an MLP with ReLU on the flattened image, a linear output."""

    def __init__(self, in_dim: int, hidden, out_dim: int):
        super().__init__()
        self.net = MLP([in_dim, *hidden, out_dim])

    def forward(self, x):
        return self.net(x.flatten(1))


class Decoder(nn.Module):
    """Codes -> images: an MLP with ReLU and a sigmoid output, returned in [-1, 1]; ``logits``
    gives the pre-sigmoid output (for the cross-entropy reconstruction error)."""

    def __init__(self, in_dim: int, hidden, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.net = MLP([in_dim, *hidden, math.prod(self.shape)])

    def logits(self, h):
        return self.net(h)

    def forward(self, h):
        return (2 * torch.sigmoid(self.net(h)) - 1).view(len(h), *self.shape)


def code_discriminator(in_dim: int, hidden) -> nn.Module:
    """D on codes: an MLP with ReLU to one logit."""
    return nn.Sequential(MLP([in_dim, *hidden, 1]), nn.Flatten(0))


@register
class AAE(Encoding, LabelledSubset, GANModel):
    name = "aae"
    family = "encoders"
    paper = "Makhzani et al., Adversarial Autoencoders"
    year = 2016
    data_desc = "images (variant=supervised, semi: labelled images)"
    # z_dim None: 10 (the style code) for variant=semi, else 2 (the paper's figures of codes).
    # input_noise, shift None: 0.3 and 2 for variant=semi, else 0.
    # lr_ae None: SEMI_LR_AE for variant=semi, else 1e-3 (see the module docstring); lr_d, lr_e,
    # lr_c None: 1e-3. optimizer=sgd: every None rate is the paper's (SGD_LR).
    defaults = {"variant": "unsupervised", "prior": "gaussian", "adversary": True, "z_dim": None,
                "e_hidden": [1000, 1000], "g_hidden": [1000, 1000], "d_hidden": [1000, 1000],
                "recon": "bce", "loss": "nonsaturating", "batch_size": 100,
                "optimizer": "adam", "momentum_ae": 0.9, "momentum_adv": 0.1, "init_std": None,
                "lr_ae": None, "lr_d": None, "lr_e": None, "lr_c": None,
                "labels_per_class": 10, "labels_only": False, "recon_labelled": False,
                "input_noise": None, "shift": None, "cat_weight": 1.0}
    ema_nets = ("G", "E")
    # Its own steps use none of the default GAN step's options.
    step_options = ()

    # -- settings and networks -------------------------------------------------------------
    def build(self):
        c, s = self.cfg, self.spec
        variant, prior = c["variant"], c["prior"]
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}{closest(str(variant), VARIANTS)}; "
                              f"choose from {', '.join(VARIANTS)}")
        if prior not in PRIORS:
            raise ConfigError(f"unknown prior {prior!r}{closest(str(prior), PRIORS)}; choose from {', '.join(PRIORS)}")
        if c["recon"] not in RECON:
            raise ConfigError(f"recon must be bce or mse, got {c['recon']!r}")
        semi = variant == "semi"
        self.z_dim = self._setting("z_dim", 10 if semi else 2, int, 1)
        self.input_noise = self._setting("input_noise", 0.3 if semi else 0.0, (int, float), 0)
        self.shift = self._setting("shift", 2 if semi else 0, int, 0)
        self.cat_weight = self._setting("cat_weight", 1.0, (int, float), 0)
        if c["optimizer"] not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {c['optimizer']!r}")
        self.sgd = c["optimizer"] == "sgd"
        for key in ("momentum_ae", "momentum_adv"):
            if isinstance(c[key], bool) or not isinstance(c[key], (int, float)) or not 0 <= c[key] < 1:
                raise ConfigError(f"{key} (optimizer=sgd) must be a number in [0, 1), got {c[key]!r}")
        adam_lr = {"lr_ae": SEMI_LR_AE if semi else 1e-3, "lr_d": 1e-3, "lr_e": 1e-3, "lr_c": 1e-3}
        self.lr = {k: self._setting(k, SGD_LR[k] if self.sgd else v, (int, float), 0) for k, v in adam_lr.items()}
        if self.shift > 7:
            raise ConfigError(f"shift is the largest random translation in pixels, 0..7; got {self.shift}")
        if prior != "gaussian":
            if variant != "unsupervised":
                raise ConfigError(f"prior={prior} is for the unsupervised variant; variant={variant} matches its "
                                  "style code to prior=gaussian")
            if self.z_dim != 2:
                raise ConfigError(f"prior={prior} is two-dimensional: it needs z_dim=2, got {self.z_dim}")
        if c["recon_labelled"] and not semi:
            raise ConfigError("recon_labelled is for variant=semi (it reconstructs the labelled images from their "
                              "labels)")
        if c["labels_only"] and not semi:
            raise ConfigError("labels_only is the baseline of variant=semi (E's classifier on the labels alone)")
        if variant != "unsupervised" and not s.n_classes:
            raise ConfigError(f"variant={variant} needs class labels; {c['data']} has none")
        self.n_cat = s.n_classes if variant != "unsupervised" else 0
        flat = math.prod(s.shape)
        self.E = Encoder(flat, c["e_hidden"], self.z_dim + (self.n_cat if semi else 0))
        self.G = Decoder(self.z_dim + self.n_cat, c["g_hidden"], s.shape)
        if semi:
            self.D_cat = code_discriminator(self.n_cat, c["d_hidden"])
            self.D_z = code_discriminator(self.z_dim, c["d_hidden"])
            self.register_labelled()
        else:
            self.D = code_discriminator(self.z_dim, c["d_hidden"])
        if c["init_std"] is not None:
            # A reimplementation's initialisation of the paper's MLPs (N(0, 0.01^2) weights, zero biases).
            std = self._setting("init_std", None, (int, float), 0)
            for net in (self.E, self.G, *self.adversaries):
                init_weights(net, "normal", std)

    def _setting(self, key, default, kind, low):
        value = self.cfg[key]
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, kind) or value < low:
            raise ConfigError(f"{key} must be a number >= {low}, got {value!r}")
        return value

    @property
    def semi(self) -> bool:
        return self.cfg["variant"] == "semi"

    @property
    def adversaries(self) -> tuple[nn.Module, ...]:
        return (self.D_cat, self.D_z) if self.semi else (self.D,)

    def optimizers(self):
        c, lr = self.cfg, self.lr

        def make(params, key, momentum):
            if self.sgd:
                return torch.optim.SGD(list(params), lr=lr[key], momentum=momentum)
            return self.adam(params, lr[key])

        # The paper's momenta: high for the reconstruction and classification costs, low for
        # both players of the adversarial games (momentum_ae, momentum_adv; Adam ignores them).
        opts = {"AE": make([*self.E.parameters(), *self.G.parameters()], "lr_ae", c["momentum_ae"]),
                "D": make([p for d in self.adversaries for p in d.parameters()], "lr_d", c["momentum_adv"]),
                "E": make(self.E.parameters(), "lr_e", c["momentum_adv"])}
        if self.semi:
            opts["C"] = make(self.E.parameters(), "lr_c", c["momentum_ae"])
        return opts

    def phases(self):
        c = self.cfg
        if c["labels_only"]:
            return [Phase("C", self.classify_step, ("C",), data=False)]
        phases = [Phase("recon", self.recon_step, ("AE",))]
        if c["adversary"]:
            # D's phase keeps E's graph (without updating E) so that E's phase reuses E(x).
            phases += [Phase("D", self.d_step, ("D",), keep_graph=("E",)), Phase("E", self.e_step, ("E",))]
        if self.semi:
            phases.append(Phase("C", self.classify_step, ("C",), data=False))
        return phases

    def prepare(self, raw) -> None:
        if self.semi:
            self.set_labelled(raw)

    # -- what E reads and writes -------------------------------------------------------------
    def augment(self, x):
        """Real images translated at random by up to ``shift`` pixels (unchanged at 0)."""
        if self.shift == 0:
            return x
        return random_shift(x, self.randint(2 * self.shift + 1, len(x), 2), self.shift)

    def corrupt(self, x):
        """E's training input: Gaussian noise of std ``input_noise`` on the [0, 1] pixel scale."""
        if self.input_noise == 0:
            return x
        return x + 2 * self.input_noise * self.randn(len(x), *x.shape[1:]).to(x.dtype)

    def split(self, out):
        """E's output as (style code z, categorical logits or None)."""
        if not self.semi:
            return out, None
        return out[:, :self.z_dim], out[:, self.z_dim:]

    def encode_batch(self, x, E):
        # semi: the code G decodes, [z, softmax(logits)]
        z, logits = self.split(E(x))
        return z if logits is None else torch.cat([z, logits.softmax(1)], 1)

    def decode_batch(self, z, G, y=None):
        if self.cfg["variant"] != "supervised":
            return G(z)
        if y is None:
            raise ConfigError("variant=supervised decodes a code with its label: model.reconstruct(x, y=labels)")
        return self.generate({"z": z, "y": y}, G)

    # -- sampling ------------------------------------------------------------------------------
    @property
    def takes_label(self) -> bool:
        return self.n_cat > 0

    @property
    def grid_nrow(self):
        return max(1, self.cfg["n_samples"] // self.n_cat) if self.n_cat else None

    def prior_sample(self, n: int, generator=None):
        """``(z, component)`` from the prior (the semi variant's style prior is N(0, I))."""
        eps = self.randn(n, self.z_dim, generator=generator)
        if self.cfg["prior"] == "gaussian":
            return eps, None
        return prior_from_noise(self.cfg["prior"], eps, self.rand(n, generator=generator))

    def sample_inputs(self, n, generator=None, label=None):
        inputs = {"z": self.prior_sample(n, generator)[0]}
        if self.n_cat:
            if label is None:
                inputs["y"] = self.randint(self.n_cat, n, generator=generator)
            else:
                if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.n_cat:
                    raise ConfigError(f"label must be a class index in 0..{self.n_cat - 1}, got {label!r}")
                inputs["y"] = torch.full((n,), label, dtype=torch.long, device=inputs["z"].device)
        elif label is not None:
            raise ConfigError("the unsupervised aae has no label to sample with (variant=supervised or semi has)")
        return inputs

    def fixed_inputs(self, n, generator):
        if not self.n_cat:
            return self.sample_inputs(n, generator)
        # One row per class, the same z down each column: only the label changes along a column.
        cols = max(1, n // self.n_cat)
        z = self.prior_sample(cols, generator)[0].repeat(self.n_cat, 1)
        return {"z": z, "y": torch.arange(self.n_cat, device=z.device).repeat_interleave(cols)}

    def decoder_input(self, inputs):
        """G's input: z, then the label (one-hot from class indices, or the semi variant's y)."""
        z = inputs["z"]
        if "y" not in inputs:
            return z
        y = inputs["y"]
        y = y.to(z.dtype) if y.is_floating_point() else F.one_hot(y, self.n_cat).to(z.dtype)
        return torch.cat([z, y], 1)

    def generate(self, inputs, net=None):
        return (net or self.G)(self.decoder_input(inputs))

    # -- the phases ----------------------------------------------------------------------------
    def recon_error(self, h, target):
        # The mean over pixels for Adam (which does not see the scale); for SGD the error of each
        # image summed over its pixels, the scale the paper's SGD rates were set for.
        if self.cfg["recon"] == "bce":
            err = F.binary_cross_entropy_with_logits(self.G.logits(h), target.flatten(1).add(1).mul(0.5),
                                                     reduction="none")
        else:
            err = (self.G(h) - target).pow(2)
        return err.flatten(1).sum(1).mean() if self.sgd else err.mean()

    def recon_step(self, batch):
        """Reconstruction phase: E and G on the reconstruction error of x."""
        x = self.augment(batch["x"])
        z, logits = self.split(self.E(self.corrupt(x)))
        if self.semi:
            inputs = {"z": z, "y": logits.softmax(1)}
        elif self.n_cat:
            inputs = {"z": z, "y": batch["y"]}  # the supervised variant: the true label
        else:
            inputs = {"z": z}
        loss = self.recon_error(self.decoder_input(inputs), x)
        if self.semi and self.cfg["recon_labelled"]:
            # A reference implementation's addition (not the paper's): labelled images are also
            # reconstructed, from their true one-hot label and E's style code, so G learns what
            # each categorical code means and the unlabelled reconstructions pull y towards it.
            xl, yl = self.labelled_batch(len(x))
            xl = self.augment(xl)
            zl = self.split(self.E(self.corrupt(xl)))[0]
            labelled = self.recon_error(self.decoder_input({"z": zl, "y": yl}), xl)
            return {"loss": loss + labelled, "recon_unlabelled": loss.detach(), "recon_labelled": labelled.detach()}
        return {"loss": loss}

    def codes(self, batch):
        """E(x) of the iteration's batch, made in D's phase and reused by E's phase (E has not
        changed in between, so it is the same graph a fresh E(x) would build)."""
        out = self.reuse("codes", self.E)
        if out is None:
            out = self.E(self.corrupt(self.augment(batch["x"])))
        return out

    def prior_targets(self, n: int) -> list[torch.Tensor]:
        """What each adversary takes as real: prior samples (semi: one-hot y, then N(0, I) z)."""
        if self.semi:
            y = F.one_hot(self.randint(self.n_cat, n), self.n_cat).float()
            return [y, self.randn(n, self.z_dim)]
        return [self.prior_sample(n)[0]]

    def code_parts(self, out) -> list[torch.Tensor]:
        """E's output as each adversary sees it (semi: softmax(logits) for D_cat, z for D_z)."""
        z, logits = self.split(out)
        return [logits.softmax(1), z] if self.semi else [z]

    def d_step(self, batch):
        """Regularisation phase, first half: each adversary on prior samples against E(x)."""
        out = self.codes(batch)
        self.share("codes", out, self.E)
        real = self.prior_targets(len(out))
        logs, loss = {}, 0.0
        for name, D, p, q in zip(self.adversary_names, self.adversaries, real, self.code_parts(out.detach())):
            d_real, d_fake = D(p), D(q)
            term = self.d_adversarial(d_real, d_fake)
            loss = loss + term
            logs[f"{name}(prior)"], logs[f"{name}(E(x))"] = d_real.mean().detach(), d_fake.mean().detach()
        return {"loss": loss, **logs}

    def e_step(self, batch):
        """Regularisation phase, second half: E as the generator, to make its codes pass for prior samples."""
        parts = self.code_parts(self.codes(batch))
        losses = [self.g_adversarial(D(q)) for D, q in zip(self.adversaries, parts)]
        if self.semi:
            losses[0] = self.cat_weight * losses[0]
        return {"loss": sum(losses)}

    @property
    def adversary_names(self) -> tuple[str, ...]:
        return ("D_cat", "D_z") if self.semi else ("D",)

    def classify_step(self, batch):
        """Semi-supervised classification phase: E's categorical head on the labelled subset only."""
        x, y = self.labelled_batch(batch_len(batch))
        logits = self.split(self.E(self.corrupt(self.augment(x))))[1]
        return {"loss": F.cross_entropy(logits, y), "acc_labelled": (logits.argmax(1) == y).float().mean().detach()}

    # -- E as a classifier (variant=semi) --------------------------------------------------------
    @property
    def classify(self):
        """``classify(x)``: the class argmax y of images ``x`` in [-1, 1]; only variant=semi has
        one (elsewhere the attribute is absent, so ``ganforge eval`` reports no accuracy)."""
        if not self.semi:
            raise AttributeError("classify: only variant=semi has a classifier")
        return self._classify

    @torch.no_grad()
    def _classify(self, x) -> torch.Tensor:
        E = getattr(self, self.encoder_name())
        with evaluating(E):
            return self.split(E(x.to(self.device)))[1].argmax(1)
