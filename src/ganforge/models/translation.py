"""What the image-to-image translators (pix2pix, CycleGAN, ...) share, apart from their objectives.

A translator maps images of domain A to domain B (and, for the two-way models, back): it samples by
translating given images, not by drawing noise. The data it trains on are grouped batches with
fields ``A`` and ``B`` (``docs/data.md``); ``direction`` (AtoB, BtoA, or auto: BtoA on facades,
as pix2pix translates label maps to photos there) is applied when the data is loaded, so a model
always learns A -> B of the batches it sees. ``jitter`` is both papers' augmentation (resize to
286/256 of the size, random crop back, random flip; the same for A and B of a pair); unset, it turns
it on from 64x64 up (photographs, as in the papers) and off below, on the digit domains, where a
mirrored digit is no digit and the resize blurs the binary edge maps into grey ones.
"""
from __future__ import annotations

import torch

from ..data import JointCrop, parse_name
from ..errors import ConfigError
from ..nn import evaluating

DIRECTIONS = ("auto", "AtoB", "BtoA")
JITTER = 286 / 256  # the papers' load size over their crop size
N_SHOW = 8  # fixed training images kept for the sample grids


class Translator:
    """Mixin for a GANModel that translates images (put it before GANModel in the bases)."""

    data_kinds = ("paired",)
    data_desc = "paired images (A, B)"
    evaluation = "translation"
    # The network translating each way (its EMA copy is used when the run has one).
    directions: dict = {"AtoB": "G"}
    _show: dict | None = None  # fixed images for the grids, set by prepare() and prepare_grid()

    @classmethod
    def data_options(cls, cfg: dict) -> dict:
        d = cfg.get("direction", "AtoB")
        if d not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {d!r}")
        if d == "auto":
            d = "BtoA" if parse_name(cfg["data"])[0] == "facades" else "AtoB"
        return {"direction": d}

    def patch_layers(self) -> int:
        """``d_layers``, or by size when unset (None): 3 (the 70x70 PatchGAN) from 64x64 up, else 2.
        At 28x28, 3 layers leave D's instance norms 3x3 and 2x2 maps, which they all but erase
        (a 1x1 map normalises to zero): D goes blind and G is free to hide its input in noise."""
        return self.by_size("d_layers", 2, 3)

    # Settings that, when unset (None), follow the image size: {key: (below 64x64, from 64x64 up)}.
    SIZED: dict = {}

    def sized(self, key: str):
        """Setting ``key`` as set, or by image size when unset (``SIZED``)."""
        return self.by_size(key, *self.SIZED[key])

    def by_size(self, key: str, small, large):
        """Setting ``key`` as set, or when unset (None) by image size: ``large`` (the papers' value,
        for their 256x256 images) from 64x64 up, ``small`` below."""
        v = self.cfg[key]
        return v if v is not None else (large if self.spec.image_size >= 64 else small)

    # -- cycles ---------------------------------------------------------------------------
    def own_or_shared(self, own: str, shared: str):
        """Setting ``own`` (one cycle's or one direction's, e.g. ``lambda_A``) as set, or when unset (None or
        absent) the shared ``shared`` (``lambda_cyc``)."""
        v = self.cfg.get(own)
        return self.cfg[shared] if v is None else v

    def check_cycle_noise(self) -> None:
        """One line, not a traceback, for a negative std of the cycle noise (:meth:`jam`)."""
        bad = {k: self.cfg[k] for k in ("cycle_noise", "cycle_noise_A", "cycle_noise_B")
               if self.cfg.get(k) is not None and self.cfg[k] < 0}
        if bad:
            raise ConfigError("the cycle_noise settings must be >= 0 (a std), got "
                              + ", ".join(f"{k}={v}" for k, v in bad.items()))

    def jam(self, fake: torch.Tensor, cycle: str) -> torch.Tensor:
        """A translation on its way back through ``cycle`` (A: A -> B -> A, B: B -> A -> B), with Gaussian
        noise of std ``cycle_noise_A`` / ``cycle_noise_B`` (unset: ``cycle_noise``; 0: none)
        added (Bashkirova, Usman & Saenko 2019): a cue hidden in faint grey levels for the other network
        to read (Chu et al. 2017's CycleGAN "steganography") drowns in it, while what D sees, the
        translation itself, is left as it is."""
        sd = self.own_or_shared(f"cycle_noise_{cycle}", "cycle_noise")
        return fake + sd * self.randn(len(fake), *fake.shape[1:]).to(fake.dtype) if sd else fake

    def in_out(self) -> tuple[int, int]:
        """Channels of A and of B (which may differ)."""
        s = self.spec
        return (s.in_channels or s.channels), s.channels

    def jitter(self) -> bool:
        """``jitter`` as set, or by size when unset (None or ``auto``): on from 64x64 up, off below."""
        j = self.cfg.get("jitter")
        if j is None or j == "auto":
            return self.spec.image_size >= 64
        if not isinstance(j, bool):
            raise ConfigError(f"jitter must be true, false or auto, got {j!r}")
        return j

    def loader_augment(self):
        if not self.jitter():
            return None
        size = self.spec.image_size
        # A seed of its own: the crops must not move when another setting draws from the run's seed.
        return JointCrop(round(size * JITTER), size, flip=True, seed=self.cfg["seed"] + 7919)

    # The engine hands over the held-out split too (prepare_grid): grids show images never trained on.
    grid_from_held_out = True

    def prepare(self, raw) -> None:
        self._pick_show(raw)

    def prepare_grid(self, held_out) -> None:
        """Grids of the first test images rather than training ones, where the data has a test split."""
        self._pick_show(held_out)

    def _pick_show(self, raw) -> None:
        # The first items of each group, in item order: the same images at every grid and after a resume.
        show = {}
        for g in (raw.groups or {}).values():
            if isinstance(g, dict):
                show.update({k: g[k][:N_SHOW].cpu() for k in ("A", "B") if k in g})
        if "A" in show and "B" in show:
            show["paired"] = any("A" in g and "B" in g for g in raw.groups.values() if isinstance(g, dict))
            self._show = show

    # -- translating ----------------------------------------------------------------------
    def translator_name(self, direction: str = "AtoB", use_ema: bool = True) -> str:
        """The network that translates ``direction``: its EMA copy when the run has one and ``use_ema``."""
        name = self.directions.get(direction)
        if name is None:
            raise ConfigError(f"{self.name} translates {' and '.join(self.directions)} only, not {direction!r}")
        return f"{name}_ema" if use_ema and hasattr(self, f"{name}_ema") else name

    def translator(self, direction: str = "AtoB", use_ema: bool = True):
        return getattr(self, self.translator_name(direction, use_ema))

    def input_channels(self, direction: str = "AtoB") -> int:
        a, b = self.in_out()
        return a if direction == "AtoB" else b

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", use_ema: bool = True,
                  batch_size: int = 64) -> torch.Tensor:
        """Images ``x`` (uint8, or floats in [-1, 1]) translated in eval mode, on the CPU, in [-1, 1]."""
        net = self.translator(direction, use_ema)
        want = self.input_channels(direction)
        if x.ndim != 4 or x.shape[1] != want:
            raise ConfigError(f"{self.name} translates {direction} from {want}-channel images (N, {want}, H, W), "
                              f"got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1.0
        out = []
        with evaluating(net):
            for i in range(0, len(x), batch_size):
                out.append(net(x[i:i + batch_size].to(self.device, torch.float32)).float().cpu())
        return torch.cat(out) if out else x.new_empty(0, self.spec.channels, *x.shape[-2:]).float()

    def sample(self, n: int = 64, seed: int | None = 0, batch_size: int = 500, use_ema: bool = True, **cond):
        raise ConfigError(f"{self.name} translates images rather than drawing them from noise: use "
                          f"`ganforge sample RUN --input IMAGE_OR_FOLDER --out DIR`, or model.translate(images)")

    # -- grids ----------------------------------------------------------------------------
    def grid_rows(self, a: torch.Tensor, b: torch.Tensor, paired: bool) -> list[list[torch.Tensor]]:
        """Columns of the grid for fixed inputs ``a``, ``b`` (floats in [-1, 1]): input | output | target."""
        return [[a, self.translate(a), b]] if paired else [[a, self.translate(a)]]

    def sample_grid(self, n: int) -> tuple[torch.Tensor, int]:
        """A grid of fixed images (the first test images, else the first training images), one example
        per row; returns (images, images per row)."""
        if self._show is None:
            raise ConfigError(f"{self.name} has no fixed images for its grid (prepare() was not given the data)")
        k = max(1, min(len(self._show["A"]), n // 3))
        a, b = (self._show[f][:k].float() / 127.5 - 1.0 for f in ("A", "B"))
        rows = self.grid_rows(a, b, self._show["paired"])
        width = max(len(cols) for cols in rows)
        c = max(t.shape[1] for cols in rows for t in cols)
        # grey domains beside colour ones: repeat the channel so one grid holds both
        fit = (lambda t: t.expand(-1, c, -1, -1) if t.shape[1] == 1 else t)  # noqa: E731
        blocks = [torch.stack([fit(t) for t in cols] + [torch.ones_like(fit(cols[0]))] * (width - len(cols)), 1)
                  for cols in rows]
        return torch.cat([blk.flatten(0, 1) for blk in blocks]), width


class TwoWay(Translator):
    """Mixin for the two-way translators of two domains that need no pairs (CycleGAN and its
    kin): G_AB and G_BA, each the other's way back."""

    data_kinds = ("unpaired", "paired")  # pairs are allowed; it never uses their correspondence
    data_desc = "two image domains A, B (unpaired)"
    ema_nets = ("G_AB", "G_BA")
    generator = "G_AB"
    directions = {"AtoB": "G_AB", "BtoA": "G_BA"}

    def grid_rows(self, a, b, paired):
        # Each way: input | output | target (paired data) or the way back's reconstruction (unpaired).
        fb, fa = self.translate(a, "AtoB"), self.translate(b, "BtoA")
        if paired:
            return [[a, fb, b], [b, fa, a]]
        return [[a, fb, self.translate(fb, "BtoA")], [b, fa, self.translate(fa, "AtoB")]]
