"""SGAN: semi-supervised GAN. Odena, "Semi-Supervised Learning with Generative Adversarial Networks",
2016; Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.

What is different from GAN: D is a classifier over N real classes plus one "fake" class, trained
with a supervised loss on the few labelled images (``labels_per_class`` per class, chosen once,
balanced, from the run's seed) and the usual real-vs-fake loss on all the rest, whose labels it
never sees. G's fakes teach D what is *not* a digit, which makes the classifier far better than
the same network trained on the labelled images alone.

D has N logits l_1..l_N; the fake class's logit is fixed at 0, which loses nothing because
softmax over N + 1 logits is unchanged by subtracting one of them (Salimans et al. Sec. 5). Then
P(real | x) = Z / (Z + 1) with Z = sum_k exp(l_k), so with lse = logsumexp(l):

    L_supervised   = cross-entropy of l on a labelled batch
    L_unsupervised = -E_x[lse(x)] + E_x[softplus(lse(x))] + E_z[softplus(lse(G(z)))]
    L_D            = L_supervised + unsup_weight * L_unsupervised

(``unsup_weight`` 0.5: the authors' code, openai/improved-gan, halves the unsupervised terms.)
G is trained by feature matching on D's last hidden layer (Salimans et al. Sec. 3.1), which they
found best for classification; ``--set g_loss=nonsaturating`` gives Odena's plain GAN objective.

Networks (``arch=mlp``, the default): Salimans et al.'s permutation-invariant MNIST model. D is an
MLP 784-1000-500-250-250-250-N with weight normalization (data-dependent init on the first
batch), ReLU, and Gaussian noise on its input (std ``input_noise`` 0.3, images seen in [0, 1])
and on every hidden layer's output (std ``hidden_noise`` 0.5), both off when classifying. G maps
z ~ U(0, 1)^100 through 500-500 softplus layers with batch norm to 784 sigmoid outputs, its last
layer weight-normalized. Adam lr 0.003, beta1 0.5, batch 100. ``lr_decay`` (the engine's schedule,
a fraction of the run) decays both learning rates linearly to 0 over the last part of the run, and
``d_average`` keeps an exponential moving average of D's weights that classifies instead of D (the authors
evaluate an average of D's weights too). ``shift`` > 0 translates the real images D and the
feature matching see (labelled and unlabelled) by up to that many pixels, a data augmentation the
paper does not use (its MNIST task is permutation-invariant; ``shift=0`` is that task).
``labels_only=true`` trains the same D on the labelled images alone, through the same engine, as
the baseline the paper's claim is measured against. ``arch=dcgan`` keeps the earlier convolutional nets (DCGAN D with ``dropout`` after each stage,
``g_width``/``d_width``; they take ``--set lr=1e-3 --set batch_size=64``).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn import DCGANDiscriminator, DCGANGenerator, evaluating, moving_average_, random_shift
from ..nn.weightnorm import WNLinear
from ..registry import register
from .base import GANModel, Phase, batch_len
from .labelled import LabelledSubset


class MLPGenerator(nn.Module):
    """z -> [Linear -> BatchNorm -> softplus] x len(hidden) -> weight-normed Linear -> sigmoid,
    returned as images in [-1, 1]."""

    def __init__(self, z_dim: int, hidden, shape):
        super().__init__()
        self.shape = tuple(shape)
        layers, prev = [], z_dim
        for h in hidden:
            layers += [nn.Linear(prev, h, bias=False), nn.BatchNorm1d(h), nn.Softplus()]
            prev = h
        self.body = nn.Sequential(*layers)
        out = math.prod(self.shape)
        self.out = WNLinear(prev, out, train_scale=True, init_std=1.0 / math.sqrt(prev))

    def forward(self, z):
        x = torch.sigmoid(self.out(self.body(z)))
        return (x * 2 - 1).view(len(z), *self.shape)


class MLPDiscriminator(nn.Module):
    """Images -> (N logits, last hidden layer). Weight-normed ReLU layers; Gaussian noise on the
    input and after every hidden layer while training. Inputs in [-1, 1] are seen in [0, 1]."""

    def __init__(self, in_dim: int, hidden, n_out: int, input_noise: float, hidden_noise: float):
        super().__init__()
        self.input_noise, self.hidden_noise = input_noise, hidden_noise
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(WNLinear(a, b, train_scale=False) for a, b in zip(dims, dims[1:]))
        self.head = WNLinear(dims[-1], n_out, train_scale=True)

    def _noise(self, h, std):
        return h + std * torch.randn_like(h) if self.training and std > 0 else h

    def forward_with_features(self, x, init: bool = False):
        h = self._noise(x.flatten(1).add(1).mul(0.5), self.input_noise)
        f = h
        for layer in self.layers:
            f = F.relu(layer.init_from(h) if init else layer(h))
            h = self._noise(f, self.hidden_noise)
        return (self.head.init_from(h) if init else self.head(h)), f

    def forward(self, x):
        return self.forward_with_features(x)[0]


class ConvDiscriminator(DCGANDiscriminator):
    """The DCGAN D with input noise and dropout after every hidden stage (``arch=dcgan``)."""

    def __init__(self, *args, input_noise: float = 0.0, dropout: float = 0.0, **kw):
        super().__init__(*args, **kw)
        self.input_noise = input_noise
        self.drop = nn.Dropout(dropout)

    def forward_with_features(self, x, init: bool = False):
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        for layer in self.body:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                x = self.drop(x)
        return self.head(x), x

    def forward(self, x):
        return self.forward_with_features(x)[0]


@register
class SGAN(LabelledSubset, GANModel):
    name = "sgan"
    family = "conditional"
    paper = "Odena, Semi-Supervised Learning with GANs; Salimans et al., Improved Techniques for Training GANs"
    year = 2016
    needs_labels = True
    data_desc = "labelled images (uses labels_per_class of them)"
    # adam_eps 1e-4: the authors' Adam adds 1e-8 to the second moment *inside* the square root, i.e.
    # an eps of 1e-4 on its scale. Most of D's hidden-layer gradients are smaller than that (median
    # |g| 2e-5..5e-5, measured on MNIST), so with torch's 1e-8 every weight moves by ~lr each step.
    # lr_decay is the engine's linear schedule, here over the last 30% of the run.
    defaults = {"arch": "mlp", "z_dim": 100, "g_hidden": [500, 500], "d_hidden": [1000, 500, 250, 250, 250],
                "labels_per_class": 10, "g_loss": "feature_matching", "unsup_weight": 0.5,
                "input_noise": 0.3, "hidden_noise": 0.5, "lr": 3e-3, "batch_size": 100,
                "adam_eps": 1e-4, "lr_decay": 0.3, "d_average": 0.999, "shift": 2, "labels_only": False,
                # arch=dcgan only:
                "g_width": 64, "d_width": 64, "d_norm": "none", "dropout": 0.3}

    def build(self):
        c, s = self.cfg, self.spec
        if c["g_loss"] not in ("feature_matching", "nonsaturating"):
            raise ConfigError(f"g_loss must be feature_matching or nonsaturating, got {c['g_loss']!r}")
        if c["arch"] not in ("mlp", "dcgan"):
            raise ConfigError(f"arch must be mlp or dcgan, got {c['arch']!r}")
        if not 0 <= c["shift"] < min(s.image_size, 8):
            raise ConfigError(f"shift is the largest random translation in pixels, 0..7; got {c['shift']!r}")
        if not 0 <= c["d_average"] < 1:
            raise ConfigError(f"d_average is a decay in [0, 1), got {c['d_average']!r}")
        if c["arch"] == "mlp":
            self.G = MLPGenerator(c["z_dim"], c["g_hidden"], s.shape)
            self.D = MLPDiscriminator(math.prod(s.shape), c["d_hidden"], s.n_classes, c["input_noise"],
                                      c["hidden_noise"])
        else:
            self.G = DCGANGenerator(c["z_dim"], s.channels, s.image_size, c["g_width"])
            # No batch norm in D by default: its statistics would differ between the labelled,
            # unlabelled and generated batches it sees, and a classifier must not depend on its batch.
            self.D = ConvDiscriminator(s.channels, s.image_size, c["d_width"], norm=c["d_norm"],
                                       out_dim=s.n_classes, input_noise=c["input_noise"], dropout=c["dropout"])
        if c["d_average"] > 0:
            self.D_avg = copy.deepcopy(self.D).requires_grad_(False)
        # The labelled subset travels in the checkpoint, so a resumed run keeps exactly the same one.
        self.register_labelled()
        # Whether D's data-dependent init has run (travels in checkpoints).
        self.register_buffer("d_initialized", torch.zeros((), dtype=torch.bool))

    def phases(self):
        if self.cfg["labels_only"]:
            return [Phase("D", self.supervised_step, ("D",), data=False)]
        return super().phases()

    @property
    def g_reads_data(self) -> bool:
        return self.cfg["g_loss"] == "feature_matching"  # D's features of real images

    def sample_inputs(self, n, generator=None, **cond):
        if self.cfg["arch"] == "mlp":  # z ~ U(0, 1), as in the authors' code
            return {"z": self.rand(n, self.cfg["z_dim"], generator=generator)}
        return super().sample_inputs(n, generator, **cond)

    # -- averaged D ----------------------------------------------------------------------------
    def after_phase(self, name: str) -> None:
        super().after_phase(name)
        if name == "D":
            self.update_average()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs made before the engine owned lr_decay kept an iteration counter here; it is not needed.
        state_dict.pop(prefix + "iteration", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_average(self) -> None:
        if not hasattr(self, "D_avg"):
            return
        moving_average_(self.D_avg, self.D, self.cfg["d_average"])

    @torch.no_grad()
    def init_d(self, x) -> None:
        """Data-dependent init of D's weight-normed layers on the images ``x`` (once; a no-op for
        arch=dcgan). Every layer's pre-activation then has mean 0 and std 1 on ``x``."""
        if self.cfg["arch"] != "mlp" or bool(self.d_initialized):
            return
        self.D.forward_with_features(x.to(self.device), init=True)
        self.d_initialized.fill_(True)
        if hasattr(self, "D_avg"):
            self.D_avg.load_state_dict(self.D.state_dict())

    # -- the labelled subset -------------------------------------------------------------
    def prepare(self, raw) -> None:
        # The engine hands over the training data once; a resumed run's checkpoint then restores
        # the same subset (it is drawn from the seed, so it is the same anyway).
        self.set_labelled(raw)

    def augment(self, x):
        """Real images, each translated by a random whole number of pixels in [-shift, shift]
        along each axis (the background fills in); unchanged when ``shift`` is 0."""
        k = self.cfg["shift"]
        return random_shift(x, self.randint(2 * k + 1, len(x), 2), k) if k else x

    def labelled_batch(self, n: int):
        """``n`` labelled images: the subset in random order, repeated as needed (each image
        equally often, as the authors cycle their labelled set), so ``n`` = its size gives all of it."""
        x, y = super().labelled_batch(n)
        return self.augment(x), y

    # -- D as a classifier ---------------------------------------------------------------
    def logits(self, x, features: bool = False, net: nn.Module | None = None):
        out, f = (net or self.D).forward_with_features(x)
        return (out, f) if features else out

    def features(self, x):
        return self.logits(x, features=True)[1]

    def classifier_net(self) -> nn.Module:
        """The network that classifies: the averaged D where ``d_average`` > 0, else D."""
        return getattr(self, "D_avg", self.D)

    @torch.no_grad()
    def classify(self, x) -> torch.Tensor:
        """D's class prediction for images ``x`` in [-1, 1] (noise and dropout off)."""
        with evaluating(self):
            return self.logits(x.to(self.device), net=self.classifier_net()).argmax(1)

    def supervised_loss(self, n: int):
        x, y = self.labelled_batch(n)
        out = self.logits(x)
        return F.cross_entropy(out, y), (out.argmax(1) == y).float().mean()

    def d_step(self, batch):
        # batch["y"] is never read: the only labels D learns from are the labelled subset's.
        self.check_labelled()
        real = batch["x"]
        n = len(real)
        if not bool(self.d_initialized):
            # On the global batch: every process computes the same scales and biases, exactly those
            # of one process training on the whole batch (a slice's statistics would differ per process).
            self.init_d(torch.cat([self.labelled_images(), self.gather(real)]))
        real = self.augment(real)
        xl, yl = self.labelled_batch(n)
        fake = self.generate(self.sample_inputs(n))
        if self.cfg["arch"] == "mlp" or self.cfg["d_norm"] == "none":
            # No batch statistics in D: one pass over the three batches is the same as three.
            out = self.logits(torch.cat([xl, real, fake.to(real.dtype)]))
            out_l, out_real, out_fake = out[:n], out[n:2 * n], out[2 * n:]
        else:
            out_l, out_real, out_fake = self.logits(xl), self.logits(real), self.logits(fake)
        l_sup = F.cross_entropy(out_l, yl)
        lse_real, lse_fake = out_real.logsumexp(1), out_fake.logsumexp(1)
        # -lse + softplus(lse) = softplus(-lse): the real/fake loss on the logit lse.
        l_unsup = F.softplus(-lse_real).mean() + F.softplus(lse_fake).mean()
        return {"loss": l_sup + self.cfg["unsup_weight"] * l_unsup, "L_sup": l_sup, "L_unsup": l_unsup,
                "acc_labelled": (out_l.argmax(1) == yl).float().mean()}

    def supervised_step(self, batch):
        """``labels_only``: D learns from the labelled subset alone, the baseline a semi-supervised
        GAN must beat (same network, noise, init, schedule, averaging and optimizer; no G, and no
        unlabelled image is ever read)."""
        self.check_labelled()
        if not bool(self.d_initialized):
            self.init_d(self.labelled_images())  # the labelled images only
        loss, acc = self.supervised_loss(batch_len(batch))
        return {"loss": loss, "acc_labelled": acc}

    def g_step(self, batch):
        fake = self.generate(self.sample_inputs(batch_len(batch)))
        out, f_fake = self.logits(fake, features=True)
        if self.cfg["g_loss"] == "nonsaturating":
            return {"loss": losses.g_loss("nonsaturating", out.logsumexp(1))}
        with torch.no_grad():
            f_real = self.features(self.augment(batch["x"]))
        return {"loss": (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()}
