"""Batches from tensors that live on the training device.

Every data set ganforge knows fits in memory, so it is kept as one tensor on the device and
shuffled there: no worker processes, no host-to-device copy per step. The loader's whole state
(shuffling generator, current permutation, position) goes into checkpoints, which is what makes
resuming bit-exact.
"""
from __future__ import annotations

import torch


class TensorLoader:
    """Endless shuffled batches of ``tensors`` (a dict of equal-length tensors).

    Under data parallelism each of ``world`` processes draws the same permutation and takes its
    own ``batch_size // world`` slice of every global batch, like a DistributedSampler.
    """

    def __init__(self, tensors: dict, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 transform=None):
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))
        if batch_size > self.n:
            raise ValueError(f"batch size {batch_size} is larger than the data set ({self.n})")
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} does not split over {world} processes")
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.local = batch_size // world
        self.transform = transform
        self.device = next(iter(tensors.values())).device
        self.g = torch.Generator().manual_seed(int(seed))
        self.perm = None
        self.pos = 0
        self.epoch = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self.perm is None or self.pos + self.batch_size > self.n:  # drop_last
            self.perm = torch.randperm(self.n, generator=self.g).to(self.device)
            self.pos = 0
            self.epoch += 1
        start = self.pos + self.rank * self.local
        idx = self.perm[start:start + self.local]
        self.pos += self.batch_size
        batch = {k: v[idx] for k, v in self.tensors.items()}
        return self.transform(batch) if self.transform else batch

    def state_dict(self) -> dict:
        return {"g": self.g.get_state(), "perm": None if self.perm is None else self.perm.cpu(),
                "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["g"])
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])


def images_to_float(batch: dict) -> dict:
    """uint8 images in [0, 255] to float in [-1, 1], the range of G's tanh output."""
    x = batch["x"]
    if x.dtype == torch.uint8:
        batch = dict(batch, x=x.float().div_(127.5).sub_(1.0))
    return batch
