"""Adversarial objectives, defined once and selectable for any model with ``--set loss=NAME``.

Every function takes D's raw outputs (logits or critic values, any shape) and returns a scalar.
``d_loss(kind, real, fake)`` is what D minimises, ``g_loss(kind, fake)`` what G minimises.

- ``minimax``: Goodfellow et al. 2014, G minimises log(1 - D(G(z))) as in the value function.
- ``nonsaturating``: the same D, but G maximises log D(G(z)), the paper's practical variant that
  gives G strong gradients early on.
- ``ls``: least squares with the a-b-c coding of Mao et al. 2017 (fake label a, real label b, and
  the value c that G wants D to believe for fake data).
- ``wasserstein``: Arjovsky et al. 2017, the critic estimates E[D(x)] - E[D(G(z))].
- ``hinge``: Lim & Ye 2017 / Miyato et al. 2018, as used by SAGAN and BigGAN.
- ``boundary``: Hjelm et al. 2018 (BGAN): D as in ``minimax``; G minimises
  0.5 * (log D - log(1 - D))^2 = 0.5 * logit^2, pulling its samples onto D's decision boundary.

f-GAN (Nowozin et al. 2016): ``F_DIVERGENCES`` holds each f-divergence's generator f, output
activation g_f and conjugate f*; ``f_bound`` is the variational lower bound D maximises, ``f_g_loss``
G's loss.

Helpers used by several models: ``gradient_penalty`` (WGAN-GP, and any model that wants a
Lipschitz critic), ``pulling_away`` (EBGAN's repelling regulariser), ``gaussian_kl`` (the KL term
of the VAE and VAE-GAN), ``check_loss`` (validation with the closest names, called when a model is
built).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("minimax", "nonsaturating", "ls", "wasserstein", "hinge", "boundary")
# Losses that read D's output as the logit of a probability (label smoothing applies to them).
CLASSIFIER_LOSSES = ("minimax", "nonsaturating", "boundary")


def check_loss(kind) -> str:
    """``kind`` if it names a loss, else a one-line ConfigError with the closest names."""
    from .errors import ConfigError, closest

    if kind not in LOSSES:
        raise ConfigError(f"unknown loss {kind!r}{closest(str(kind), LOSSES)}; choose from {', '.join(LOSSES)}")
    return kind


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def bce_to(logits, target: float):
    """Cross-entropy of D's logits against one target label (1 real, 0 fake)."""
    return _bce(logits, target)


def ls_to(d, target: float):
    """Least-squares GAN term (Mao et al.): mean (D(x) - target)^2, the translators' adversarial loss."""
    return (d - target).pow(2).mean()


def l1(x, y):
    """Mean absolute difference: the reconstruction and cycle terms."""
    return (x - y).abs().mean()


def d_loss(kind: str, real, fake, real_label: float = 1.0, a: float = 0.0, b: float = 1.0):
    """D's loss. ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016)."""
    if kind in CLASSIFIER_LOSSES:
        return _bce(real, real_label) + _bce(fake, 0.0)
    if kind == "ls":
        return 0.5 * ((real - b).pow(2).mean() + (fake - a).pow(2).mean())
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def g_loss(kind: str, fake, c: float = 1.0):
    """G's loss from D's outputs on generated data."""
    if kind == "minimax":
        # log(1 - sigmoid(l)) = -softplus(l); G minimises it, so the loss is -softplus(l).
        return -F.softplus(fake).mean()
    if kind == "nonsaturating":
        return _bce(fake, 1.0)
    if kind == "ls":
        return 0.5 * (fake - c).pow(2).mean()
    if kind == "boundary":
        # log D - log(1 - D) is the logit itself; its square is smallest on the boundary D = 1/2.
        return 0.5 * fake.float().pow(2).mean()
    if kind in ("wasserstein", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def _input_grad(out, x, scaler=None):
    """grad_x out.sum(), kept in the graph (create_graph) so that a penalty on it trains D.

    With an enabled ``scaler`` (a ``torch.amp.GradScaler``, fp16 AMP), float16 backward passes of
    a small ``out`` would underflow to zero; as in PyTorch's AMP recipe for gradient penalties, the
    gradient is taken of the scaled loss and unscaled in float32.
    """
    if scaler is None or not scaler.is_enabled():
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return grad
    # Scaled as D's own loss is (a batch mean times the scale), so the backward through D runs at
    # magnitudes the scaler has tuned; the scaled sum would overflow float16 at the initial 2**16.
    # The scale as a tensor (the scale of a one), not get_scale(): no host sync per step.
    scale = scaler.scale(torch.ones((), device=x.device)) / out.numel()
    (grad,) = torch.autograd.grad(out.sum() * scale, x, create_graph=True)
    return grad.float() / scale


def gradient_penalty(D, real, fake, center: float = 1.0, alpha=None, scaler=None, **d_kwargs):
    """Gulrajani et al. 2017: E[(||grad_x D(x_hat)||_2 - center)^2] at x_hat = a*real + (1-a)*fake.

    ``a`` ~ U[0, 1] per sample unless ``alpha`` (shape (B,)) is given. The graph is kept
    (create_graph) so that the penalty trains D. ``scaler``: the fp16 GradScaler, if any (see
    ``_input_grad``). Extra keyword arguments go to ``D``.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = D(x_hat, **d_kwargs)
    grad = _input_grad(out, x_hat, scaler)
    norm = grad.flatten(1).norm(2, dim=1)
    return (norm - center).pow(2).mean()


def r1_penalty(d_real, real, scaler=None):
    """Mescheder et al. 2018: E[||grad_x D(x)||^2] on real data, a zero-centred penalty.

    ``real`` must require grad before ``d_real = D(real)`` is computed, so D runs once for both
    its loss and the penalty; the graph is kept so that the penalty trains D. ``scaler``: the fp16
    GradScaler, if any (see ``_input_grad``).
    """
    grad = _input_grad(d_real.float(), real, scaler)
    return grad.float().flatten(1).pow(2).sum(1).mean()


def pulling_away(h):
    """EBGAN's pulling-away term (Zhao et al. 2017): the mean squared cosine similarity over
    distinct pairs of the batch's codes ``h`` (B, ...): 0 for orthogonal codes, 1 for parallel ones."""
    h = F.normalize(h.flatten(1).float(), dim=1)
    n = h.shape[0]
    if n < 2:
        return h.sum() * 0.0
    sim = (h @ h.t()).pow(2)
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in nats, summed over the code's dimensions and
    averaged over the batch: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling 2014,
    appendix B), the prior term of a reparameterised Gaussian encoder's loss."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------- f-divergences
class FDivergence:
    """One row of Nowozin et al. 2016's Tables 1 and 2: the generator function ``f(u)`` of
    D_f(P||Q) = E_Q[f(p/q)], the output activation ``g_f(v)`` that maps D's raw output v into the
    domain of the conjugate, the conjugate ``f*(t)``, and ``conj_of_act(v)`` = f*(g_f(v)) written
    so that it neither overflows nor loses digits for large |v| (the composite is all training needs)."""

    def __init__(self, name, f, activation, conjugate, conj_of_act, about):
        self.name, self.f, self.activation, self.conjugate = name, f, activation, conjugate
        self.conj_of_act, self.about = conj_of_act, about


_LOG2 = 0.6931471805599453
F_DIVERGENCES = {d.name: d for d in (
    FDivergence("kl", lambda u: u * torch.log(u), lambda v: v, lambda t: torch.exp(t - 1),
                lambda v: torch.exp(v - 1), "Kullback-Leibler KL(P||Q): mode covering"),
    FDivergence("reverse-kl", lambda u: -torch.log(u), lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t),
                lambda v: v - 1, "reverse KL(Q||P): mode seeking"),
    FDivergence("pearson", lambda u: (u - 1) ** 2, lambda v: v, lambda t: t * t / 4 + t,
                lambda v: v * v / 4 + v, "Pearson chi^2"),
    FDivergence("neyman", lambda u: (1 - u) ** 2 / u, lambda v: 1 - torch.exp(-v), lambda t: 2 - 2 * torch.sqrt(1 - t),
                lambda v: 2 - 2 * torch.exp(-v / 2), "Neyman chi^2"),
    FDivergence("squared-hellinger", lambda u: (torch.sqrt(u) - 1) ** 2, lambda v: 1 - torch.exp(-v),
                lambda t: t / (1 - t), lambda v: torch.expm1(v), "squared Hellinger"),
    FDivergence("jensen-shannon", lambda u: -(u + 1) * torch.log((1 + u) / 2) + u * torch.log(u),
                lambda v: _LOG2 - F.softplus(-v), lambda t: -torch.log(2 - torch.exp(t)),
                lambda v: F.softplus(v) - _LOG2, "Jensen-Shannon"),
    FDivergence("gan", lambda u: u * torch.log(u) - (u + 1) * torch.log(u + 1), lambda v: -F.softplus(-v),
                lambda t: -torch.log(1 - torch.exp(t)), lambda v: F.softplus(v),
                "the original GAN's: 2 JS - log 4"),
)}


def f_divergence(name: str) -> FDivergence:
    from .errors import ConfigError, closest

    if name not in F_DIVERGENCES:
        raise ConfigError(f"unknown divergence {name!r}{closest(str(name), F_DIVERGENCES)}; choose from "
                          f"{', '.join(F_DIVERGENCES)}")
    return F_DIVERGENCES[name]


def f_bound(name: str, v_p, v_q):
    """The variational lower bound E_P[g_f(V)] - E_Q[f*(g_f(V))] <= D_f(P||Q) (Nowozin et al., eq. 6)
    from D's raw outputs on samples of P (the data) and of Q (the model); D maximises it."""
    d = F_DIVERGENCES[name]
    return d.activation(v_p.float()).mean() - d.conj_of_act(v_q.float()).mean()


def f_g_loss(name: str, v_q, saddle: bool = False):
    """G's loss: with ``saddle`` the paper's saddle point, G minimising the bound, whose only G term
    is -E_Q[f*(g_f(V))]; otherwise its practical alternative (Sec. 3.2, like the non-saturating GAN
    trick): maximise E_Q[g_f(V)], the same fixed point with stronger early gradients."""
    d = F_DIVERGENCES[name]
    return -d.conj_of_act(v_q.float()).mean() if saddle else -d.activation(v_q.float()).mean()


def orthogonal_penalty(weights):
    """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3, without beta):
    sum over ``weights`` of ||W W^T * (1 - I)||_F^2, each W (a conv kernel flattened to (out, in*k*k))
    with rows as filters. Only the filters' pairwise cosines-times-norms are pushed to 0, not their
    norms to 1 (Brock et al. found the full ||W^T W - I||^2 too limiting). Gradient: 4 (W W^T * (1 - I)) W."""
    total = 0.0
    for w in weights:
        w = w.float().flatten(1)
        gram = w @ w.t()
        total = total + (gram - torch.diag_embed(gram.diagonal())).pow(2).sum()
    return total
