"""SGAN: semi-supervised GAN. Odena, "Semi-Supervised Learning with Generative Adversarial Networks",
2016; Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.

What is different from GAN: D is a classifier over N real classes plus one "fake" class, trained
with a supervised loss on the few labelled images (``labels_per_class`` per class, chosen once,
balanced, from the run's seed) and the usual real-vs-fake loss on all the rest, whose labels it
never sees. G's fakes teach D what is *not* a digit, which makes the classifier far better than
the same network trained on the labelled images alone.

D has N logits l_1..l_N; the fake class's logit is fixed at 0, which loses nothing because
softmax over N + 1 logits is unchanged by subtracting one of them (Salimans et al. Sec. 5). Then
P(real | x) = Z / (Z + 1) with Z = sum_k exp(l_k), so the real/fake loss is the usual one on the
logit logsumexp(l). G is trained by feature matching on D's last hidden layer (Salimans et al.
Sec. 3.1), which they found best for classification; ``--set g_loss=nonsaturating`` gives
Odena's plain GAN objective. D sees its inputs with Gaussian noise and has dropout after each
hidden stage (both off when classifying), as Salimans et al.'s D does: the labelled set is tiny.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError, DataError
from ..nn import DCGANDiscriminator, DCGANGenerator, evaluating
from ..registry import register
from .base import GANModel


@register
class SGAN(GANModel):
    name = "sgan"
    family = "conditional"
    paper = "Odena, Semi-Supervised Learning with GANs; Salimans et al., Improved Techniques for Training GANs"
    year = 2016
    needs_labels = True
    data_desc = "labelled images (uses labels_per_class of them)"
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "d_norm": "none", "labels_per_class": 10,
                "g_loss": "feature_matching", "unsup_weight": 1.0, "input_noise": 0.3, "dropout": 0.3,
                "lr": 1e-3}  # measured: 0.8785 held-out vs 0.75 at 2e-4 (docs/conditional.md)

    def build(self):
        c, s = self.cfg, self.spec
        if c["labels_per_class"] < 1:
            raise ConfigError(f"labels_per_class must be at least 1, got {c['labels_per_class']}")
        if c["g_loss"] not in ("feature_matching", "nonsaturating"):
            raise ConfigError(f"g_loss must be feature_matching or nonsaturating, got {c['g_loss']!r}")
        self.G = DCGANGenerator(c["z_dim"], s.channels, s.image_size, c["g_width"])
        # No batch norm in D by default: its statistics would differ between the labelled, unlabelled
        # and generated batches it sees, and a classifier must not depend on its batch.
        self.D = DCGANDiscriminator(s.channels, s.image_size, c["d_width"], norm=c["d_norm"], out_dim=s.n_classes)
        self.drop = nn.Dropout(c["dropout"])
        n = c["labels_per_class"] * s.n_classes
        # The labelled subset travels in the checkpoint, so a resumed run keeps exactly the same one.
        self.register_buffer("labelled_idx", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("labelled_x", torch.zeros(n, s.channels, s.image_size, s.image_size, dtype=torch.uint8))
        self.register_buffer("labelled_y", torch.zeros(n, dtype=torch.long))

    # -- the labelled subset -------------------------------------------------------------
    def select_labelled(self, y: torch.Tensor) -> torch.Tensor:
        """Indices of ``labels_per_class`` items of each class, drawn from the run's seed."""
        k, g = self.cfg["labels_per_class"], torch.Generator().manual_seed(self.cfg["seed"])
        idx = []
        for c in range(self.spec.n_classes):
            members = (y.cpu() == c).nonzero().squeeze(1)
            if len(members) < k:
                raise DataError(f"labels_per_class={k}, but class {c} has only {len(members)} items in "
                                f"{self.cfg['data']}")
            idx.append(members[torch.randperm(len(members), generator=g)[:k]])
        return torch.cat(idx)

    def set_labelled(self, raw) -> None:
        """Keep the labelled subset of ``raw`` (the run's training data) in the model's buffers."""
        idx = self.select_labelled(raw.y)
        self.labelled_idx.copy_(idx)
        self.labelled_x.copy_(raw.x[idx])
        self.labelled_y.copy_(raw.y[idx])

    def _ensure_labelled(self) -> None:
        if self.labelled_idx[0] >= 0:
            return
        # The engine hands a model batches, not the data set; load the same data the trainer did
        # (already on disk, seconds at most), once per run.
        from ..data import load_data

        self.set_labelled(load_data(self.cfg["data"], self.cfg["image_size"], root=self.cfg["data_root"]))

    def labelled_batch(self, n: int):
        i = self.randint(len(self.labelled_y), n)
        return self.labelled_x[i].float().div(127.5).sub(1.0), self.labelled_y[i]

    # -- D as a classifier ---------------------------------------------------------------
    def noisy(self, x):
        if self.training and self.cfg["input_noise"] > 0:
            x = x + self.cfg["input_noise"] * torch.randn_like(x)
        return x

    def features(self, x):
        """D's body with the regularisers: noise on the input, dropout after every hidden stage."""
        x = self.noisy(x)
        for layer in self.D.body:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                x = self.drop(x)
        return x

    def logits(self, x, features: bool = False):
        f = self.features(x)
        out = self.D.head(f)
        return (out, f) if features else out

    @torch.no_grad()
    def classify(self, x) -> torch.Tensor:
        """D's class prediction for images ``x`` in [-1, 1] (noise and dropout off)."""
        with evaluating(self):
            return self.logits(x.to(self.device)).argmax(1)

    def supervised_loss(self, n: int):
        x, y = self.labelled_batch(n)
        out = self.logits(x)
        return F.cross_entropy(out, y), (out.argmax(1) == y).float().mean()

    def d_step(self, batch):
        # batch["y"] is never read: the only labels D learns from are the labelled subset's.
        self._ensure_labelled()
        real = batch["x"]
        l_sup, acc = self.supervised_loss(len(real))
        fake = self.generate(self.sample_inputs(len(real)))
        lse_real, lse_fake = self.logits(real).logsumexp(1), self.logits(fake).logsumexp(1)
        l_unsup = losses.d_loss("nonsaturating", lse_real, lse_fake)
        return {"loss": l_sup + self.cfg["unsup_weight"] * l_unsup, "L_sup": l_sup, "L_unsup": l_unsup,
                "acc_labelled": acc}

    def g_step(self, batch):
        fake = self.generate(self.sample_inputs(len(batch["x"])))
        out, f_fake = self.logits(fake, features=True)
        if self.cfg["g_loss"] == "nonsaturating":
            return {"loss": losses.g_loss("nonsaturating", out.logsumexp(1))}
        with torch.no_grad():
            f_real = self.features(batch["x"])
        return {"loss": (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()}
