"""CoGAN: Liu & Tuzel, "Coupled Generative Adversarial Networks", NeurIPS 2016.

What is different: it learns the *joint* distribution of two domains from unpaired samples of each,
with no pairs and no translation. Two GANs, one per domain, share weights: the generators their
first layers (which decode the high-level semantics of z), the discriminators their last layers
(which read the high-level semantics of an image). Only the layers that render low-level detail
(G's last, D's first) are the domain's own. So one z gives a *pair* (G_A(z), G_B(z)) showing the
same thing in both domains (a digit and its negative, a digit and its edge map), though no pair
was ever seen. With ``--set share=false`` the two GANs are independent, the paper's control: each
still learns its domain, but a z's two images have nothing to do with each other.

Here G is one network: its high-level layers ``G.trunk`` (``G.trunk_A``, ``G.trunk_B`` unshared;
``G.trunk_of(domain)`` either way) and the domains' heads ``G.head_A``, ``G.head_B``; D likewise
has the domains' first layers ``D.tail_A``, ``D.tail_B`` and its last layers ``D.trunk``. Both
domains' losses are summed, so the shared layers get the gradients of both GANs. DCGAN-style
networks for 28x28 (``g_arch=dcgan``: a projection of z and two transposed convolutions, the last
the domain's own), or the paper's deeper digit G (``g_arch=paper``: four shared transposed convs up
to 25x25, then one per domain); D a 2-layer conv net ending in the paper's hidden fully connected
layer (``d_hidden``); the non-saturating GAN loss, Adam 2e-4 (0.5, 0.999).

Data: two domains A, B (``mnist-negative-unpaired``, ``mnist-edges-unpaired``, ...), items drawn
independently. ``sample`` returns the pairs side by side (N, C, H, 2W), so ``ganforge sample``
writes pairs drawn from the same z; ``sample_pair`` returns them apart. ``ganforge eval`` reports
``pair_agreement`` (``joint_metrics``): how often the two images of a z show the same digit, read
by each domain's digit classifier, on the derived digit domains whose relation is known.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import View, dcgan_init
from ..registry import register
from .base import GANModel, Phase

CONFIDENT = 0.9  # a classifier's top probability for a digit to count as legible


class CoupledGenerator(nn.Module):
    """z -> (image A, image B): trunk(s) of the high-level layers, then one transposed conv per domain.

    ``arch="dcgan"``: the trunk projects z to 2w x S/4 x S/4 and upsamples once (w x S/2 x S/2); the
    heads upsample once more. ``arch="paper"``: the paper's digit G, deeper: z as a 1x1 map through a
    transposed conv to 8w x 4 x 4, then three 3x3 stride-2 transposed convs (4w x 7, 2w x 13, w x 25 at
    28x28), and heads of one 6x6 stride-1 transposed conv (the paper: w = 128, PReLU; ReLU here, as in
    the dcgan trunk). Its heads only render pixels at full size: the shape is drawn by the shared layers."""

    ARCHS = ("dcgan", "paper")

    def __init__(self, z_dim: int, ch_a: int, ch_b: int, image_size: int, width: int, share: bool,
                 arch: str = "dcgan"):
        super().__init__()
        if image_size % 4:
            raise ConfigError(f"cogan's networks need an image size that is a multiple of 4, got {image_size}")
        if arch not in self.ARCHS:
            raise ConfigError(f"g_arch must be one of {', '.join(self.ARCHS)}, got {arch!r}")
        s, w = image_size // 4, width

        def bn_relu(c):
            return [nn.BatchNorm2d(c), nn.ReLU(True)]

        if arch == "dcgan":
            def trunk():  # high-level layers: what is drawn
                return nn.Sequential(nn.Linear(z_dim, 2 * w * s * s, bias=False), View(2 * w, s, s), *bn_relu(2 * w),
                                     nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), *bn_relu(w))

            def head(ch):  # low-level layers: how it is rendered in each domain
                return nn.Sequential(nn.ConvTranspose2d(w, ch, 4, 2, 1), nn.Tanh())
        else:
            # A 3x3 stride-2 transposed conv maps n -> 2n - 1, so s0 -> 8 s0 - 7 after three; the head's
            # kernel makes up the rest (6 at 28x28, as the paper's).
            s0 = (image_size + 4) // 8
            k = image_size - 8 * s0 + 10

            def trunk():
                layers = [View(z_dim, 1, 1), nn.ConvTranspose2d(z_dim, 8 * w, s0, 1, 0, bias=False), *bn_relu(8 * w)]
                for c_in, c_out in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w)):
                    layers += [nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, bias=False), *bn_relu(c_out)]
                return nn.Sequential(*layers)

            def head(ch):
                return nn.Sequential(nn.ConvTranspose2d(w, ch, k, 1, 1), nn.Tanh())

        # Shared: one module, held once (a module held under two names would be saved twice).
        self.shared = share
        if share:
            self.trunk = trunk()
        else:
            self.trunk_A, self.trunk_B = trunk(), trunk()
        self.head_A, self.head_B = head(ch_a), head(ch_b)
        dcgan_init(self)

    def trunk_of(self, domain: str) -> nn.Module:
        return self.trunk if self.shared else getattr(self, f"trunk_{domain}")

    def forward(self, z):
        if self.shared:
            h = self.trunk(z)
            return self.head_A(h), self.head_B(h)
        return self.head_A(self.trunk_A(z)), self.head_B(self.trunk_B(z))


class CoupledDiscriminator(nn.Module):
    """(image, domain) -> logit: the domain's own first conv, then the (shared) rest."""

    def __init__(self, ch_a: int, ch_b: int, image_size: int, width: int, share: bool, hidden: int = 500):
        super().__init__()
        s, w = image_size // 4, width
        self.tail_A = nn.Sequential(nn.Conv2d(ch_a, w, 4, 2, 1), nn.LeakyReLU(0.2, True))
        self.tail_B = nn.Sequential(nn.Conv2d(ch_b, w, 4, 2, 1), nn.LeakyReLU(0.2, True))

        def trunk():  # no batch norm: each domain's batch passes alone, and would be normalised alone
            # The paper's digit D ends in a hidden fully connected layer (500) before the output;
            # hidden=0 is the D of runs made before it (a linear read of one conv's map).
            fc = [nn.Linear(2 * w * s * s, hidden), nn.LeakyReLU(0.2, True), nn.Linear(hidden, 1)] if hidden \
                else [nn.Linear(2 * w * s * s, 1)]
            return nn.Sequential(nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Flatten(), *fc)

        self.shared = share
        if share:
            self.trunk = trunk()
        else:
            self.trunk_A, self.trunk_B = trunk(), trunk()
        dcgan_init(self)

    def trunk_of(self, domain: str) -> nn.Module:
        return self.trunk if self.shared else getattr(self, f"trunk_{domain}")

    def forward(self, x, domain: str):
        tail = self.tail_A if domain == "A" else self.tail_B
        return self.trunk_of(domain)(tail(x)).squeeze(1)


@register
class CoGAN(GANModel):
    name = "cogan"
    family = "translation"
    paper = "Liu & Tuzel, Coupled Generative Adversarial Networks"
    year = 2016
    data_kinds = ("unpaired", "paired")  # pairs are allowed; it never uses their correspondence
    data_desc = "two image domains A, B (unpaired)"
    evaluation = "pairs"
    defaults = {"z_dim": 100, "g_width": 64, "g_arch": "dcgan", "d_width": 32, "d_hidden": 500, "share": True, "loss": "nonsaturating",
                "batch_size": 64, "lr": 2e-4, "betas": [0.5, 0.999]}
    legacy_defaults = {"d_hidden": 0}  # runs from before D had its hidden layer

    def build(self):
        c, s = self.cfg, self.spec
        if not isinstance(c["share"], bool):
            raise ConfigError(f"share must be true or false, got {c['share']!r}")
        ch_a, ch_b = (s.in_channels or s.channels), s.channels
        self.G = CoupledGenerator(c["z_dim"], ch_a, ch_b, s.image_size, c["g_width"], c["share"], c["g_arch"])
        if int(c["d_hidden"]) < 0:
            raise ConfigError(f"d_hidden must be >= 0 (0: no hidden layer in D), got {c['d_hidden']}")
        self.D = CoupledDiscriminator(ch_a, ch_b, s.image_size, c["d_width"], c["share"], int(c["d_hidden"]))

    def phases(self):
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ("G",), data=False)]

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        with torch.no_grad():
            fa, fb = self.G(self.randn(len(a), self.cfg["z_dim"]))
        la = self.d_adversarial(self.D(a, "A"), self.D(fa, "A"))
        lb = self.d_adversarial(self.D(b, "B"), self.D(fb, "B"))
        return {"loss": la + lb, "D_A": la.detach(), "D_B": lb.detach()}

    def g_step(self, batch):
        fa, fb = self.G(self.randn(batch["n"] if "n" in batch else len(batch["A"]), self.cfg["z_dim"]))
        la, lb = self.g_adversarial(self.D(fa, "A")), self.g_adversarial(self.D(fb, "B"))
        return {"loss": la + lb, "G_A": la.detach(), "G_B": lb.detach()}

    # -- sampling: pairs from one z ---------------------------------------------------------
    @torch.no_grad()
    def sample_pair(self, n: int = 64, seed: int | None = 0, use_ema: bool = True, batch_size: int = 500):
        """``n`` pairs (images of A, images of B), each pair from one z, on the CPU, in [-1, 1]."""
        from ..nn import evaluating

        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.sample_inputs(n, g)["z"]
        net = self.generator_net(use_ema)
        with evaluating(net):
            outs = [net(z[i:i + batch_size]) for i in range(0, n, batch_size)]
        return torch.cat([o[0] for o in outs]).float().cpu(), torch.cat([o[1] for o in outs]).float().cpu()

    def generate(self, inputs, net=None):
        """The pairs side by side (N, C, H, 2W); a grey domain beside a colour one is repeated to RGB."""
        a, b = (net or self.G)(inputs["z"])
        c = max(a.shape[1], b.shape[1])
        return torch.cat([a.expand(-1, c, -1, -1), b.expand(-1, c, -1, -1)], 3)

    def joint_metrics(self, n: int = 10_000, seed: int = 0, use_ema: bool = True, device="cpu") -> dict:
        """How often the two images of one z agree, on derived digit domains (``-negative``,
        ``-edges``, ``-color``): ``pair_agreement``, the fraction of pairs whose A and B the digit
        classifiers (each domain's, data/translation.domain_view) give the same class; and
        ``pixel_agreement``, the paper's measure, the fraction of pixels where the relation applied
        to A (``255 - A``, ``edges(A)``) and B agree after thresholding at half range (for colour
        domains: A against uncolor(B)). ``confident``: the fraction of pairs that both classifiers
        read with probability >= ``CONFIDENT``, and ``pair_agreement_confident`` the agreement among
        them. ``classes_A``: classes covered by A's samples."""
        from ..data import parse_name
        from ..data.translation import derived_of
        from ..metrics.classifier import to_uint8
        from ..metrics.evaluate import class_metrics
        from ..metrics.features import DigitsExtractor

        base = parse_name(self.cfg["data"])[0]
        got = derived_of(base)
        if got is None:
            raise ConfigError(f"pair agreement needs two derived digit domains whose relation is known "
                              f"(mnist-negative-unpaired, mnist-edges-unpaired, ...), not {base!r}")
        source, kind, _ = got
        a, b = self.sample_pair(n, seed, use_ema)
        pa = DigitsExtractor(source, device).extract(a)[1].softmax(1)
        pb = DigitsExtractor(f"{source}{kind.suffix}", device).extract(b)[1].softmax(1)
        la, lb = pa.argmax(1), pb.argmax(1)
        # Pairs both classifiers read with confidence: agreement there is not blurred by illegible digits.
        sure = (pa.max(1).values >= CONFIDENT) & (pb.max(1).values >= CONFIDENT)
        ua, ub = to_uint8(a), to_uint8(b)
        if kind.to_digit is not None:
            lhs, rhs = ua, kind.to_digit(ub)
        else:
            lhs, rhs = kind.make(ua, torch.arange(n), "train")["B"], ub
        pixels = ((lhs >= 128) == (rhs >= 128)).float().mean()
        return {"n": n, "pair_agreement": round(float((la == lb).float().mean()), 6),
                "pixel_agreement": round(float(pixels), 6),
                "confident": round(float(sure.float().mean()), 6),
                "pair_agreement_confident": round(float((la == lb)[sure].float().mean()), 6) if sure.any() else None,
                "classes_A": class_metrics(torch.nn.functional.one_hot(la, 10).float(), 10)["classes"],
                "share": self.cfg["share"]}


__all__ = ["CoGAN", "CoupledDiscriminator", "CoupledGenerator"]
