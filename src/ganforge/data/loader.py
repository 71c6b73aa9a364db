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

    def set_batch_size(self, batch_size: int) -> None:
        """A new batch size from the next batch on (a model that grows during training asks for it)."""
        if batch_size > self.n or batch_size % self.world:
            raise ValueError(f"batch size {batch_size} does not fit {self.n} items over {self.world} processes")
        self.batch_size, self.local = batch_size, batch_size // self.world

    def state_dict(self) -> dict:
        return {"g": self.g.get_state(), "perm": None if self.perm is None else self.perm.cpu(),
                "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["g"])
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])




def _group_seed(seed: int, i: int) -> int:
    """The first group keeps ``seed`` (so one-group data shuffles exactly as a TensorLoader); the
    others get seeds far from it, so unpaired domains never share a permutation."""
    return int(seed) if i == 0 else (int(seed) + 0x9E3779B97F4A7C15 * i) % (1 << 63)


class FileSource(torch.utils.data.Dataset):
    """A group that stays on disk: ``decode(files[i])`` gives item i as a dict of uint8 tensors.

    ``decode`` must pickle (a module-level function or a ``functools.partial`` of one): worker
    processes call it.
    """

    def __init__(self, files, decode, fields=()):
        self.files, self.decode, self.fields = list(files), decode, tuple(fields)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        return self.decode(self.files[i])

    def take(self, part: slice) -> "FileSource":
        return FileSource(self.files[part], self.decode, self.fields)


class _Ahead:
    """The batch sampler of a stream: a copy of the consumer's order, running ahead of it."""

    def __init__(self, order: TensorLoader):
        self.order = order

    def __iter__(self):
        while True:
            yield next(self.order)["i"].tolist()


class _Stream:
    """One streamed group: items read by worker processes in exactly the order a TensorLoader
    over the same number of items would take them.

    The state is that of the consumer-side order (how many batches were handed out), not of the
    workers, which prefetch ahead; loading a state restarts the workers from it.
    """

    def __init__(self, source: FileSource, batch_size, seed, rank, world, workers: int):
        self.source, self.workers = source, int(workers)
        self.order = TensorLoader({"i": torch.arange(len(source))}, batch_size, seed, rank, world)
        self._it = None

    def set_batch_size(self, batch_size: int) -> None:
        self.order.set_batch_size(batch_size)
        self._it = None  # the workers prefetch batches of the old size: restart them from here

    def __next__(self) -> dict:
        if self._it is None:
            ahead = TensorLoader({"i": torch.arange(len(self.source))}, self.order.batch_size, 0,
                                 self.order.rank, self.order.world)
            ahead.load_state_dict(self.order.state_dict())
            dl = torch.utils.data.DataLoader(self.source, batch_sampler=_Ahead(ahead), num_workers=self.workers)
            self._it = iter(dl)
        next(self.order)
        return next(self._it)

    def state_dict(self) -> dict:
        return self.order.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.order.load_state_dict(state)
        self._it = None


class JointCrop:
    """pix2pix's jitter: images brought to ``load_size``, a random ``crop_size`` crop and a random
    horizontal flip, identical for every image field of a sample (so A and B stay aligned).

    Offsets and flips are drawn for the whole global batch and sliced by rank, so a run over
    several processes augments exactly as one process would. The generator's state is part of
    the loader's state.
    """

    def __init__(self, load_size: int, crop_size: int, flip: bool = True, seed: int = 0):
        if crop_size > load_size:
            raise ValueError(f"crop size {crop_size} is larger than the load size {load_size}")
        self.load_size, self.crop_size, self.flip = int(load_size), int(crop_size), flip
        self.g = torch.Generator().manual_seed(int(seed))

    def __call__(self, part: dict, rank: int = 0, world: int = 1) -> dict:
        keys = [k for k, v in part.items() if v.dtype == torch.uint8 and v.ndim == 4]
        if not keys:
            return part
        local = len(part[keys[0]])
        n, c, room = local * world, self.crop_size, self.load_size - self.crop_size
        oy = torch.randint(0, room + 1, (n,), generator=self.g)[rank * local:(rank + 1) * local]
        ox = torch.randint(0, room + 1, (n,), generator=self.g)[rank * local:(rank + 1) * local]
        flip = (torch.rand(n, generator=self.g) < 0.5)[rank * local:(rank + 1) * local] if self.flip \
            else torch.zeros(local, dtype=torch.bool)
        ar = torch.arange(c)
        rows = oy[:, None] + ar
        cols = torch.where(flip[:, None], ox[:, None] + ar.flip(0), ox[:, None] + ar)
        out = dict(part)
        for k in keys:
            v = part[k]
            if v.shape[-1] != self.load_size or v.shape[-2] != self.load_size:
                from .base import resize_images
                v = resize_images(v, self.load_size)
            b = torch.arange(local, device=v.device)[:, None, None]
            # advanced indices around a slice put the indexed dims first: (n, c, c, C)
            out[k] = v[b, :, rows.to(v.device)[:, :, None], cols.to(v.device)[:, None, :]].permute(0, 3, 1, 2) \
                .contiguous()
        return out

    def state_dict(self) -> dict:
        return {"g": self.g.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["g"])


class GroupLoader:
    """Endless batches of named fields in groups: ``{group: {field: tensor}}`` or
    ``{group: FileSource}``.

    The fields of a group shuffle together (paired A and B); each group has its own generator,
    permutation and position (unpaired domains). Every batch is one dict holding all fields of
    all groups. With one in-memory group it yields exactly what ``TensorLoader`` yields for the
    same seed. ``augment`` (e.g. :class:`JointCrop`) runs on each group's uint8 fields before
    ``transform``.
    """

    def __init__(self, groups: dict, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 transform=None, augment=None, workers: int = 2, device=None):
        if not groups:
            raise ValueError("no groups to load")
        seen = {}
        for name, g in groups.items():
            for k in (g.fields if isinstance(g, FileSource) else g):
                if k in seen:
                    raise ValueError(f"field {k!r} is in groups {seen[k]!r} and {name!r}")
                seen[k] = name
        self.loaders = {}
        for i, (name, g) in enumerate(groups.items()):
            s = _group_seed(seed, i)
            self.loaders[name] = _Stream(g, batch_size, s, rank, world, workers) if isinstance(g, FileSource) \
                else TensorLoader(g, batch_size, s, rank, world)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.local = batch_size // world
        self.transform, self.augment = transform, augment
        mem = [next(iter(g.values())).device for g in groups.values() if isinstance(g, dict)]
        self.device = torch.device(device) if device is not None else (mem[0] if mem else torch.device("cpu"))

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch = {}
        for loader in self.loaders.values():
            part = next(loader)
            if self.augment is not None:
                part = self.augment(part, self.rank, self.world)
            batch.update({k: v.to(self.device) for k, v in part.items()})
        return self.transform(batch) if self.transform else batch

    def set_batch_size(self, batch_size: int) -> None:
        for loader in self.loaders.values():
            loader.set_batch_size(batch_size)
        self.batch_size, self.local = batch_size, batch_size // self.world

    def state_dict(self) -> dict:
        (name, first), *rest = self.loaders.items()
        if not rest and self.augment is None and isinstance(first, TensorLoader):
            return first.state_dict()  # plain data: the checkpoint format from before groups
        return {"groups": {k: v.state_dict() for k, v in self.loaders.items()},
                "augment": None if self.augment is None else self.augment.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "groups" not in state:  # a checkpoint from before groups: one TensorLoader's state
            (loader,) = self.loaders.values()
            loader.load_state_dict(state)
            return
        if set(state["groups"]) != set(self.loaders):
            raise ValueError(f"loader state has groups {sorted(state['groups'])}, the data {sorted(self.loaders)}")
        for k, v in state["groups"].items():
            self.loaders[k].load_state_dict(v)
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])


def images_to_float(batch: dict) -> dict:
    """Every uint8 image field (x, A, B, ...) in [0, 255] to float in [-1, 1], the range of G's tanh output."""
    # x as before (any uint8 x); other fields only when shaped like images, so that a future
    # uint8 non-image field (tokens, masks) is not rescaled by accident.
    return {k: v.float().div_(127.5).sub_(1.0) if v.dtype == torch.uint8 and (k == "x" or v.ndim == 4) else v
            for k, v in batch.items()}
