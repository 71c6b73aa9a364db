"""StyleGAN: Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial
Networks", CVPR 2019.

What is different: G no longer reads z at its input. A mapping network f of 8 fully connected
layers turns z into an intermediate latent w; the synthesis network g starts from a learned 4x4
constant, and in each of its layers w sets the style (a per-channel scale and shift after
instance norm: AdaIN) while per-pixel noise, scaled by learned per-channel strengths, supplies
the stochastic detail. Style mixing regularisation: for 90% of the training samples two latents
are drawn and the layers from a random crossover point on take the second one's w, so that
neighbouring styles are not assumed to be correlated. The mean of w is tracked during training;
sampling with truncation psi pulls each w towards it (``ganforge sample RUN --truncation 0.7``),
and ``ganforge sample RUN --mix`` draws the style-mixing grid of the paper's figure 3.

Trained as in the paper: the non-saturating logistic loss with R1 (gamma 10), ProGAN's D and its
progressive growing (``models.progan``: the schedule, the fade and exact resume are shared;
``--set progressive=false`` trains at full size), Adam (0, 0.99), the mapping network at 1/100 of
the learning rate. Not reproduced: the blur after up/downsampling and the learning-rate and
batch-size ramp of the authors' 8-GPU runs.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..nn import evaluating
from ..nn.progressive import ProgressiveDiscriminator, StyleGenerator, levels_for
from ..registry import register
from .progan import ProGAN


@register
class StyleGAN(ProGAN):
    name = "stylegan"
    family = "advanced"
    paper = "Karras et al., A Style-Based Generator Architecture for Generative Adversarial Networks"
    year = 2019
    # The authors' one-GPU configuration (stylegan/train.py): 600k images per fade and per stage,
    # batch sizes by resolution, higher rates from 128x128 on; R1 gamma 10; mixing probability 0.9;
    # w's running mean with decay 0.995.
    defaults = {**ProGAN.defaults, "w_dim": 512, "mapping_layers": 8, "mapping_lr_mul": 0.01,
                "loss": "nonsaturating", "lambda_gp": 0.0, "drift": 0.0, "r1_gamma": 10.0,
                "style_mixing": 0.9, "w_avg_beta": 0.995, "truncation_cutoff": 0,
                "fade_images": 600_000, "stage_images": 600_000,
                "batch_sizes": {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4},
                "lr_by_res": {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}}
    sample_options = ("truncation", "mix")

    def build(self):
        c, s = self.cfg, self.spec
        if not 0.0 <= c["style_mixing"] <= 1.0:
            raise ConfigError(f"style_mixing is a probability in [0, 1], got {c['style_mixing']!r}")
        if c["mapping_layers"] < 1:
            raise ConfigError(f"mapping_layers must be >= 1, got {c['mapping_layers']!r}")
        self.levels = levels_for(s.image_size)
        self.G = StyleGenerator(c["z_dim"], c["w_dim"], s.channels, s.image_size, c["mapping_layers"],
                                c["fmap_base"], c["fmap_max"], c["mapping_lr_mul"], c["w_avg_beta"])
        self.D = ProgressiveDiscriminator(s.channels, s.image_size, c["fmap_base"], c["fmap_max"], c["mbstd_group"])
        self._setup_growth()

    # -- G's inputs: z, the mixing partner and crossover, the noise, the truncation -----------
    def sample_inputs(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None,
                      **cond) -> dict:
        G, L = self.G, self.G.num_layers
        inputs = {"z": self.randn(n, self.cfg["z_dim"], generator=generator),
                  "noise": self.randn(n, G.synthesis.noise_size, generator=generator)}
        if generator is None and self.training and self.cfg["style_mixing"] > 0:
            # Mixing regularisation, per sample: the crossover falls among the layers in use at this stage.
            used = 2 * (G.synthesis.level + 1)
            mix = self.rand(n) < self.cfg["style_mixing"]
            cross = 1 + self.randint(max(used - 1, 1), n)
            inputs["z2"] = self.randn(n, self.cfg["z_dim"])
            inputs["cross"] = torch.where(mix, cross, torch.full_like(cross, L))
        if truncation is not None:
            inputs["psi"] = self.truncation_psi(n, truncation)
        return inputs

    def truncation_psi(self, n: int, psi: float) -> torch.Tensor:
        """(n, layers) weights of w against the mean w: ``psi`` in the first ``truncation_cutoff``
        layers (0: all of them), 1 (untouched) in the rest."""
        if not isinstance(psi, (int, float)) or isinstance(psi, bool) or not math.isfinite(psi):
            raise ConfigError(f"--truncation takes a number psi (1: no truncation, 0: the mean w), got {psi!r}")
        L, cutoff = self.G.num_layers, self.cfg["truncation_cutoff"]
        per_layer = torch.where(torch.arange(L) < (cutoff or L), float(psi), 1.0)
        return per_layer.expand(n, L).to(self.device)

    def generate(self, inputs: dict, net=None):
        net = net or self.G
        return net(inputs["z"], z2=inputs.get("z2"), cross=inputs.get("cross"), noise=inputs.get("noise"),
                   psi=inputs.get("psi"))

    # -- the style-mixing grid (figure 3) ----------------------------------------------------
    def style_groups(self) -> dict[str, range]:
        """The layers whose styles figure 3 copies: coarse (4-8 px), middle (16-32 px), fine (the rest);
        at small sizes the boundaries move down so that every group has a resolution where possible."""
        n_res = self.levels + 1
        c = min(2, max(1, n_res - 2))
        m = max(c, min(4, n_res - 1))
        return {"coarse": range(0, 2 * c), "middle": range(2 * c, 2 * m), "fine": range(2 * m, 2 * n_res)}

    @torch.no_grad()
    def mixing_grid(self, seed: int = 0, use_ema: bool = True, truncation: float | None = None, n_sources: int = 5,
                    rows_per_group: int = 2, **cond):
        """Figure 3: the top row holds sources A, the left column sources B; every other image is
        A's styles with one group (coarse, middle, fine: ``rows_per_group`` rows each) taken from
        B. One noise map for all, so the differences are the styles'. Returns (images, nrow)."""
        g = torch.Generator().manual_seed(seed)
        groups = [layers for layers in self.style_groups().values() if len(layers)]
        n_rows = rows_per_group * len(groups)
        net = self.generator_net(use_ema)
        za = torch.randn(n_sources, self.cfg["z_dim"], generator=g).to(self.device)
        zb = torch.randn(n_rows, self.cfg["z_dim"], generator=g).to(self.device)
        noise = torch.randn(1, net.synthesis.noise_size, generator=g).to(self.device)
        psi_a = self.truncation_psi(n_sources, truncation) if truncation is not None else None
        psi_b = self.truncation_psi(n_rows, truncation) if truncation is not None else None
        with evaluating(net):
            wa, wb = net.styles(za, psi=psi_a), net.styles(zb, psi=psi_b)
            rows = [torch.cat([wa[:1] * 0, wa])]  # placeholder for the blank corner
            for i in range(n_rows):
                layers = list(groups[i // rows_per_group])
                mixed = wa.clone()
                mixed[:, layers] = wb[i, layers]
                rows.append(torch.cat([wb[i:i + 1], mixed]))
            ws = torch.cat(rows)
            images = net.synthesis(ws, noise.expand(len(ws), -1)).float().cpu()
        images[0] = 1.0  # the corner of the figure stays blank (white)
        return images, n_sources + 1
