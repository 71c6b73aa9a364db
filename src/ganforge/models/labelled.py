"""The labelled subset of a semi-supervised model: ``labels_per_class`` images of each class.

Shared by SGAN and the semi-supervised AAE. The subset is drawn once from the run's seed (per
class, a seeded permutation of that class's members, the first ``labels_per_class`` of it), so for
one seed and one data set every such model learns from the same labelled images and their
accuracies compare like for like. It is kept in buffers, so it travels in checkpoints, and the
engine hands the training data over once (``GANModel.prepare``): a model never loads data.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, DataError, GanforgeError


class LabelledSubset:
    """Mixin for a GANModel that learns from a balanced labelled subset of its training data.

    Call ``register_labelled()`` in ``build``; the engine's ``prepare(raw)`` then fills it.
    """

    def register_labelled(self) -> None:
        c, s = self.cfg, self.spec
        if c["labels_per_class"] < 1:
            raise ConfigError(f"labels_per_class must be at least 1, got {c['labels_per_class']}")
        if not s.n_classes:
            raise DataError(f"{self.name} needs class labels for its labelled subset; {c['data']} has none")
        n = c["labels_per_class"] * s.n_classes
        self.register_buffer("labelled_idx", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("labelled_x", torch.zeros(n, s.channels, s.image_size, s.image_size, dtype=torch.uint8))
        self.register_buffer("labelled_y", torch.zeros(n, dtype=torch.long))

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
        if raw.y is None:
            raise DataError(f"{self.name} needs class labels for its labelled subset; {raw.name} has none")
        idx = self.select_labelled(raw.y)
        self.labelled_idx.copy_(idx)
        self.labelled_x.copy_(raw.x[idx])
        self.labelled_y.copy_(raw.y[idx])

    def check_labelled(self) -> None:
        if self.labelled_idx[0] < 0:
            raise GanforgeError(f"{self.name} has no labelled subset yet: the engine sets it from the training data "
                                "(model.prepare(raw), or model.set_labelled(raw) by hand)")

    def labelled_images(self) -> torch.Tensor:
        return self.labelled_x.float().div(127.5).sub(1.0)

    def labelled_batch(self, n: int):
        """``n`` labelled (images in [-1, 1], labels): the subset in random order, repeated as needed,
        so each image is seen equally often; under data parallelism, this process's slice."""
        self.check_labelled()
        m = len(self.labelled_y)
        full = n * self.world
        i = torch.cat([torch.randperm(m, device=self.device) for _ in range(-(-full // m))])[:full]
        i = i[self.rank * n:(self.rank + 1) * n]
        return self.labelled_images()[i], self.labelled_y[i]
