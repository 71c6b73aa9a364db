"""CC-GAN: Denton, Gross & Fergus, "Semi-Supervised Learning with Context-Conditional Generative
Adversarial Networks", 2016.

What is different: G does not draw images from noise; it *in-paints*. A square patch (``hole``
pixels a side, at a random place in each image) is removed from a real image, and G sees the rest
(the context, the hole filled with 0) together with a low-resolution copy of the whole image
(``lowres``: the image averaged over ``lowres_factor`` x ``lowres_factor`` blocks and upsampled
back, the paper's CC-GAN2, which tells G roughly what belongs in the hole). G's output is pasted
into the hole only: x_G = (1 - m) * x + m * G(context, low-res), m the hole's mask. D must tell real
images from in-painted ones, which asks it to know what a digit's parts look like in context:
features a classifier can use.

D is semi-supervised as in SGAN (``models/sgan.py``, whose labelled subset, K-logit (K+1)-class D
with the fake logit fixed at 0, averaged D, ``classify()`` and ``labels_only`` baseline this model
reuses): a cross-entropy loss on the ``labels_per_class`` labelled images, and on the unlabelled
batch the real/fake loss with the real images as "real" and their in-painted copies as "fake".
G's loss is the non-saturating GAN loss on D's real/fake logit (``g_loss=feature_matching``:
SGAN's instead). ``ganforge eval RUN`` reports D's held-out accuracy, as for SGAN.

Networks at 28x28: G is pix2pix's U-Net (``nn/translation.py``; its skips carry the context
straight across, its dropout is G's only noise, as in the paper's encoder-decoder G); D is the
DCGAN D without batch norm, with dropout (SGAN's ``arch=dcgan`` D). ``g_down`` (3) halvings in
G's encoder: 28x28 (padded to 32) down to 4x4, where a 14x14 hole still spans encoder cells. The paper's low-res image
enters G's encoder at an intermediate layer; here it enters as an input channel beside the context.
``sample(n)`` in-paints a fixed random hole in images kept from the training data
(``context_images``), so grids, ``ganforge sample`` and FD work as for any model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from ..errors import ConfigError
from ..nn import UNetGenerator
from ..registry import register
from .base import batch_len
from .sgan import SGAN, ConvDiscriminator

N_CONTEXT = 256  # training images kept (in the checkpoint) for sampling


@register
class CCGAN(SGAN):
    name = "ccgan"
    family = "conditional"
    paper = "Denton et al., Semi-Supervised Learning with Context-Conditional GANs"
    year = 2016
    data_desc = "labelled images (uses labels_per_class of them)"
    defaults = {"labels_per_class": 10, "hole": 14, "lowres": True, "lowres_factor": 4, "g_width": 32, "g_down": 3,
                "d_width": 32, "dropout": 0.3, "g_dropout": 0.5, "input_noise": 0.0, "g_loss": "nonsaturating",
                "unsup_weight": 1.0, "lr": 2e-4, "batch_size": 64, "d_average": 0.999, "shift": 2,
                "lr_decay": 0.3, "labels_only": False, "arch": "dcgan", "d_norm": "none"}

    def build(self):
        c, s = self.cfg, self.spec
        if c["g_loss"] not in ("feature_matching", "nonsaturating"):
            raise ConfigError(f"g_loss must be feature_matching or nonsaturating, got {c['g_loss']!r}")
        if c["arch"] != "dcgan":
            raise ConfigError("ccgan's D is the convolutional one (arch=dcgan)")
        if not 0 < c["hole"] < s.image_size:
            raise ConfigError(f"hole is the removed patch's side in pixels, 1..{s.image_size - 1}; got {c['hole']!r}")
        if c["lowres"] and (c["lowres_factor"] < 2 or s.image_size % c["lowres_factor"]):
            raise ConfigError(f"lowres_factor must be >= 2 and divide the image side {s.image_size}, "
                              f"got {c['lowres_factor']!r}")
        if not 0 <= c["shift"] < min(s.image_size, 8):
            raise ConfigError(f"shift is the largest random translation in pixels, 0..7; got {c['shift']!r}")
        if not 0 <= c["d_average"] < 1:
            raise ConfigError(f"d_average is a decay in [0, 1), got {c['d_average']!r}")
        in_ch = s.channels * (2 if c["lowres"] else 1)
        self.G = UNetGenerator(in_ch, s.channels, s.image_size, c["g_width"], "batch", c["g_dropout"],
                               max_down=c["g_down"])
        self.D = ConvDiscriminator(s.channels, s.image_size, c["d_width"], norm=c["d_norm"], out_dim=s.n_classes,
                                   input_noise=c["input_noise"], dropout=c["dropout"])
        if c["d_average"] > 0:
            import copy

            self.D_avg = copy.deepcopy(self.D).requires_grad_(False)
        self.register_labelled()
        self.register_buffer("d_initialized", torch.ones((), dtype=torch.bool))  # no data-dependent init here
        self.register_buffer("context_x", torch.zeros(N_CONTEXT, *s.shape, dtype=torch.uint8))

    @property
    def g_reads_data(self) -> bool:
        return True  # G in-paints real images

    def prepare(self, raw) -> None:
        super().prepare(raw)
        g = torch.Generator().manual_seed(self.cfg["seed"] + 1)
        idx = torch.randperm(len(raw.x), generator=g)[:N_CONTEXT]
        idx = idx.repeat(-(-N_CONTEXT // len(idx)))[:N_CONTEXT]
        self.context_x.copy_(raw.x[idx])

    # -- the context ----------------------------------------------------------------------
    def hole_corners(self, n: int, generator=None) -> torch.Tensor:
        """(n, 2) top-left corners (row, column) of each image's hole, uniform over the image."""
        return self.randint(self.spec.image_size - self.cfg["hole"] + 1, n, 2, generator=generator)

    def hole_mask(self, corners: torch.Tensor) -> torch.Tensor:
        """(n, 1, H, W) float mask, 1 inside each image's hole."""
        size, k = self.spec.image_size, self.cfg["hole"]
        r = torch.arange(size, device=corners.device)
        rows = (r[None] >= corners[:, :1]) & (r[None] < corners[:, :1] + k)
        cols = (r[None] >= corners[:, 1:]) & (r[None] < corners[:, 1:] + k)
        return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1).float()

    def low_res(self, x):
        f = self.cfg["lowres_factor"]
        return F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="nearest")

    def g_input(self, x, mask):
        """What G sees: the context (the hole set to 0) and, with ``lowres``, the low-res whole image."""
        context = x * (1 - mask)
        return torch.cat([context, self.low_res(x)], 1) if self.cfg["lowres"] else context

    def inpaint(self, x, corners, net=None):
        """x with its holes filled by G (``net``): (1 - m) x + m G(context, low-res)."""
        mask = self.hole_mask(corners).to(x.dtype)
        out = (net or self.G)(self.g_input(x, mask))
        return x * (1 - mask) + out * mask

    # -- sampling -------------------------------------------------------------------------
    def sample_inputs(self, n, generator=None, **cond):
        if generator is None:
            i = self.randint(N_CONTEXT, n)
        else:
            i = torch.randint(N_CONTEXT, (n,), generator=generator).to(self.device)
        x = self.context_x[i].float().div(127.5).sub(1.0)
        return {"x": x, "corners": self.hole_corners(n, generator=generator)}

    def generate(self, inputs, net=None):
        return self.inpaint(inputs["x"], inputs["corners"], net)

    # -- training -------------------------------------------------------------------------
    def d_step(self, batch):
        # batch["y"] is never read: the only labels D learns from are the labelled subset's.
        self.check_labelled()
        real = self.augment(batch["x"])
        n = len(real)
        xl, yl = self.labelled_batch(n)
        fake = self.inpaint(real, self.hole_corners(n))
        # No batch statistics in D: one pass over the three batches is the same as three.
        out = self.logits(torch.cat([xl, real, fake.detach().to(real.dtype)]))
        out_l, out_real, out_fake = out[:n], out[n:2 * n], out[2 * n:]
        l_sup = F.cross_entropy(out_l, yl)
        l_unsup = F.softplus(-out_real.logsumexp(1)).mean() + F.softplus(out_fake.logsumexp(1)).mean()
        return {"loss": l_sup + self.cfg["unsup_weight"] * l_unsup, "L_sup": l_sup, "L_unsup": l_unsup,
                "acc_labelled": (out_l.argmax(1) == yl).float().mean()}

    def g_step(self, batch):
        real = self.augment(batch["x"])
        fake = self.inpaint(real, self.hole_corners(batch_len(batch)))
        out, f_fake = self.logits(fake, features=True)
        if self.cfg["g_loss"] == "nonsaturating":
            return {"loss": losses.g_loss("nonsaturating", out.logsumexp(1))}
        with torch.no_grad():
            f_real = self.features(real)
        return {"loss": (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()}
