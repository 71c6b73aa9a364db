"""BGAN for discrete data: Hjelm et al., "Boundary-Seeking Generative Adversarial Networks", ICLR 2018
(Sec. 2.3, Algorithm 1). The continuous variant is ``bgan``.

What is different from GAN: G's output is not an image but, for each z, the parameters of a
discrete distribution g(x | z) over images: one Bernoulli logit per pixel (``levels=2``, binarized
images) or a softmax over ``levels`` grey levels per pixel. Samples x ~ g(x | z) are exactly
discrete, so nothing can be backpropagated through them; G is trained by a policy gradient instead.

For each of the N z's of a batch, M = ``m_samples`` images x^(1..M) ~ g(x | z) are drawn. D is
trained as in GAN, on real images (quantised to the same levels, so that D cannot tell real from
fake by the grey values alone) against all N*M samples. An optimal D gives
p_data(x) = p_G(x) D(x) / (1 - D(x)), so w(x) = D(x) / (1 - D(x)) = exp(D's logit) is an
importance weight that turns samples of G into samples of the data. Normalised over the M samples
of each z, w~^(m) = w^(m) / sum_m' w^(m') = softmax over m of the logits, it defines the target
p~(x | z) = w~ g(x | z) that G moves towards by minimising KL(p~(x | z) || g(x | z)) averaged
over z; its gradient is the REINFORCE-like estimator

    G's loss = -(1/N) sum_n sum_m w~^(m)_n log g(x^(m)_n | z_n),   w~ a constant (no gradient).

The samples G is pushed towards are those with D(x) / (1 - D(x)) largest relative to the other
samples of the same z; at D = 1/2 everywhere (the boundary) the weights are uniform and the
expected gradient is zero.

Options: ``normalise=z`` (default) normalises the weights over the M samples of each z, the
paper's lower-variance estimator; ``normalise=batch`` normalises over all N*M samples (one
partition function beta for the batch, the basic f-importance estimator). ``estimator=reinforce``
uses the paper's REINFORCE-BGAN reward instead of w~: r = log w - log beta^ with the estimated
log partition function log beta^ = log mean w (of the z's M samples, or of the batch) as baseline
(the paper's reward also has a constant +1, whose expected gradient is zero; it is left out).

Real images are quantised to the levels by rounding (``quantize=round``; for ``levels=2`` this is
the usual thresholded binarization at 1/2) or by unbiased stochastic rounding, drawn afresh for every
batch (``quantize=sample``; for ``levels=2`` the stochastic binarization of Salakhutdinov & Murray 2008).
G's sampling noise is part of its inputs (``u``, one uniform number per pixel), so
``model.sample(n, seed=s)`` is reproducible like every other model's.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn import MLP
from ..registry import register
from .base import GANModel, batch_len

ESTIMATORS = ("importance", "reinforce")
NORMALISE = ("z", "batch")
QUANTIZE = ("round", "sample")


# ----------------------------------------------------------------------------- the estimator
def log_partition(log_w: torch.Tensor, normalise: str = "z") -> torch.Tensor:
    """log of the mean importance weight: per z (shape (N,)) over the M samples, or over the batch.

    ``log_w`` is (M, N): D's logits on the M samples of each of N z's.
    """
    if normalise == "z":
        return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
    return torch.logsumexp(log_w.flatten(), dim=0) - math.log(log_w.numel())


def importance_weights(log_w: torch.Tensor, normalise: str = "z") -> torch.Tensor:
    """Normalised weights w~ (M, N) from D's logits (M, N); w = D / (1 - D) = exp(logit).

    ``normalise="z"``: w~ = softmax over the M samples of each z (each column sums to 1).
    ``normalise="batch"``: w / mean over all N*M samples of w, divided by M (columns sum to 1 on average).
    """
    log_w = log_w.float()
    return (log_w - log_partition(log_w, normalise) - math.log(log_w.shape[0])).exp()


def discrete_g_loss(log_w: torch.Tensor, log_g: torch.Tensor, estimator: str = "importance",
                    normalise: str = "z") -> tuple[torch.Tensor, torch.Tensor]:
    """G's loss -(1/N) sum_n sum_m r^(m)_n log g(x^(m)_n | z_n), and the weights r (detached).

    ``log_w``: D's logits on the samples (M, N), ``log_g``: log g(x^(m) | z_n) (M, N), differentiable.
    ``estimator="importance"``: r = w~ (:func:`importance_weights`); ``"reinforce"``: r = log w - log beta^.
    """
    log_w = log_w.detach().float()
    if estimator == "importance":
        r = importance_weights(log_w, normalise)
    else:
        r = log_w - log_partition(log_w, normalise)
    return -(r * log_g.float()).sum(0).mean(), r


# ----------------------------------------------------------------------------- g(x | z)
def draw_levels(logits: torch.Tensor, u: torch.Tensor, levels: int) -> torch.Tensor:
    """Level indices k ~ g(x | z) by inversion of the CDF with the uniform noise ``u``.

    ``logits``: (..., D) Bernoulli logits for ``levels=2``, (..., D, levels) otherwise; ``u``: (..., D)
    in [0, 1). Returns float level indices (..., D) in {0, ..., levels - 1}.
    """
    with torch.no_grad():
        if levels == 2:
            return (u < torch.sigmoid(logits.float())).float()
        cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)[..., :-1]
        return (u.unsqueeze(-1) >= cdf).sum(-1).clamp_(max=levels - 1).float()


def log_prob(logits: torch.Tensor, k: torch.Tensor, levels: int) -> torch.Tensor:
    """log g(x | z) of level indices ``k`` (..., D): the sum over the D pixels."""
    logits = logits.float()
    if levels == 2:
        return (k * logits - F.softplus(logits)).sum(-1)
    return torch.log_softmax(logits, dim=-1).gather(-1, k.long().unsqueeze(-1)).squeeze(-1).sum(-1)


def levels_to_images(k: torch.Tensor, levels: int, shape) -> torch.Tensor:
    """Level indices (B, D) to images (B, *shape) in [-1, 1]: level 0 is -1, the top level +1."""
    return ((2.0 * k - (levels - 1)) / (levels - 1)).view(k.shape[0], *shape)


def quantize(x: torch.Tensor, levels: int, mode: str = "round") -> torch.Tensor:
    """Images in [-1, 1] to level indices in {0, ..., levels - 1} (same shape, float).

    ``round``: the nearest level (levels=2: x > 0, i.e. pixel > 127.5). ``sample``: stochastic rounding
    between the two nearest levels, unbiased (levels=2: Bernoulli with p = pixel / 255).
    """
    t = (x.float().clamp(-1, 1) + 1) * (0.5 * (levels - 1))
    if mode == "round":
        return t.round()
    lo = t.floor()
    return (lo + (torch.rand_like(t) < t - lo).float()).clamp_(max=levels - 1)


@register
class BGANDiscrete(GANModel):
    name = "bgan-discrete"
    family = "objectives"
    paper = "Hjelm et al., Boundary-Seeking Generative Adversarial Networks (discrete data)"
    year = 2018
    data_kinds = ("image",)
    data_desc = "images, quantised to `levels` grey levels (binarized for levels=2)"
    defaults = {"z_dim": 64, "g_hidden": 256, "d_hidden": 256, "levels": 2, "m_samples": 20,
                "estimator": "importance", "normalise": "z", "quantize": "round", "lr": 1e-4}

    def build(self):
        c = self.cfg
        if not 2 <= c["levels"] <= 256:
            raise ConfigError(f"levels must be an integer in [2, 256], got {c['levels']!r}")
        if c["m_samples"] < 1:
            raise ConfigError(f"m_samples must be at least 1, got {c['m_samples']!r}")
        for key, allowed in (("estimator", ESTIMATORS), ("normalise", NORMALISE), ("quantize", QUANTIZE)):
            if c[key] not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {c[key]!r}")
        self.dim = math.prod(self.spec.shape)
        self.per_pixel = 1 if c["levels"] == 2 else c["levels"]
        self.G = MLP([c["z_dim"], c["g_hidden"], c["g_hidden"], self.dim * self.per_pixel], act=nn.ReLU)
        self.D = MLP([self.dim, c["d_hidden"], c["d_hidden"], 1], act=lambda: nn.LeakyReLU(0.2))

    # -- g(x | z) --------------------------------------------------------------------------
    def logits(self, z: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """The parameters of g(x | z): (N, D) Bernoulli logits, or (N, D, levels) softmax logits."""
        out = (net or self.G)(z)
        return out if self.per_pixel == 1 else out.view(len(z), self.dim, self.per_pixel)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None, **cond) -> dict:
        return {"z": self.randn(n, self.cfg["z_dim"], generator=generator),
                "u": self.rand(n, self.dim, generator=generator)}

    def generate(self, inputs: dict, net: nn.Module | None = None) -> torch.Tensor:
        """One sample x ~ g(x | z) per z, as images in [-1, 1] on the ``levels`` grid."""
        lv = self.cfg["levels"]
        return levels_to_images(draw_levels(self.logits(inputs["z"], net), inputs["u"], lv), lv, self.spec.shape)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n z's and M samples of each: (logits (n, D[, levels]), levels k (M, n, D), images (M*n, *shape))."""
        m, lv = self.cfg["m_samples"], self.cfg["levels"]
        logits = self.logits(self.randn(n, self.cfg["z_dim"]))
        u = self.rand(n, m, self.dim).transpose(0, 1)  # drawn per z, so a z's M samples travel together
        k = draw_levels(logits.detach().unsqueeze(0).expand(m, *logits.shape), u, lv)
        return logits, k, levels_to_images(k.reshape(m * n, self.dim), lv, self.spec.shape)

    def real_levels(self, x: torch.Tensor) -> torch.Tensor:
        lv = self.cfg["levels"]
        return levels_to_images(quantize(x, lv, self.cfg["quantize"]).flatten(1), lv, self.spec.shape)

    # -- the two phases --------------------------------------------------------------------
    def d_step(self, batch: dict) -> dict:
        real = self.real_levels(batch["x"])
        with torch.no_grad():
            _, _, fake = self.draw(len(real))
        d_real, d_fake = self.D(real.flatten(1)).squeeze(1), self.D(fake.flatten(1)).squeeze(1)
        loss = losses.d_loss("minimax", d_real, d_fake)
        return {"loss": loss, "D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}

    def g_step(self, batch: dict) -> dict:
        n, m = batch_len(batch), self.cfg["m_samples"]
        logits, k, fake = self.draw(n)
        with torch.no_grad():
            log_w = self.D(fake.flatten(1)).view(m, n).float()
        log_g = log_prob(logits.unsqueeze(0).expand(m, *logits.shape), k, self.cfg["levels"])  # (M, n)
        loss, r = discrete_g_loss(log_w, log_g, self.cfg["estimator"], self.cfg["normalise"])
        w = importance_weights(log_w, "z")
        return {"loss": loss, "log_g": log_g.detach().mean(), "ESS": (1.0 / w.pow(2).sum(0)).mean()}
