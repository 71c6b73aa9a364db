"""How well generated images agree with the captions they were drawn for (text-to-image models).

On the captioned digit sets every word of a caption can be checked on an image: the class by
the built-in digit classifier on the grey digit recovered by ``uncolor`` (data/translation.py),
the foreground and background colours by the nearest palette colours to the image's border
(background) and its pixels farthest from it (ink), thickness and slant by the same measurements
the captions were made from (data/captions.py :func:`measure`). Captions are made from held-out
images' attributes, saying every attribute that is true of them (``full_caption``); the
agreement is the share of generated images whose class / fg / bg match, and for thickness and
slant, Spearman's rank correlation between what the caption says (thin -1, unsaid 0, thick +1;
left-leaning -1, upright 0, right-leaning +1) and what is measured on the image.

Pure functions of images and fields, plus :func:`text_metrics`, which draws from a model.
"""
from __future__ import annotations

import numpy as np
import torch

INK_SHARE = 0.08  # the share of an image's pixels, farthest from its background, read as ink


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype == torch.uint8 else (x.float().clamp(-1, 1) + 1) * 127.5


def palette_colors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fg, bg) palette indices of RGB images (N, 3, H, W), uint8 or in [-1, 1]: bg is the palette
    colour nearest the border's median colour; fg the one nearest the mean of the ``INK_SHARE``
    of pixels farthest from that median."""
    from ..data.translation import COLORS

    u = _to_255(x)
    pal = COLORS.float()
    border = torch.cat([u[:, :, 0], u[:, :, -1], u[:, :, 1:-1, 0], u[:, :, 1:-1, -1]], 2)
    bg_rgb = border.median(2).values  # (N, 3)
    flat = u.flatten(2)  # (N, 3, P)
    dist = (flat - bg_rgb[:, :, None]).pow(2).sum(1)  # (N, P)
    k = max(1, int(INK_SHARE * flat.shape[2]))
    idx = dist.topk(k, 1).indices
    ink = torch.gather(flat, 2, idx[:, None].expand(-1, 3, -1)).mean(2)
    nearest = lambda rgb: torch.cdist(rgb, pal).argmin(1)  # noqa: E731
    return nearest(ink), nearest(bg_rgb)


def spearman(a, b) -> float:
    """Spearman's rank correlation (ties get average ranks); nan when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def digit_source(data: str) -> str | None:
    """The grey digit set behind a captioned one (``mnist-captions`` -> ``mnist``); None otherwise."""
    from ..data import parse_name

    base = parse_name(data)[0]
    return base[: -len("-captions")] if base in ("mnist-captions", "digits-captions") else None


def agreement(images: torch.Tensor, fields: dict, source: str = "mnist") -> dict:
    """Caption agreement of ``images`` drawn for captions made from ``fields`` (y, fg, bg, thick, slant)."""
    from ..data.captions import measure, slant_level, thickness_level
    from ..data.translation import uncolor
    from .classifier import load_classifier, predict

    grey = uncolor(images)
    net, _ = load_classifier(source)
    cls = predict(net, grey).argmax(1)
    fg, bg = palette_colors(images)
    m = measure(grey)
    said_thick = thickness_level(fields["thick"])
    slant = slant_level(fields["slant"])
    said_slant = torch.where(slant == 2, torch.zeros_like(slant), slant)  # between two words: unsaid
    return {"text_class": float((cls == fields["y"]).float().mean()),
            "text_fg": float((fg == fields["fg"]).float().mean()),
            "text_bg": float((bg == fields["bg"]).float().mean()),
            "text_all": float(((cls == fields["y"]) & (fg == fields["fg"]) & (bg == fields["bg"])).float().mean()),
            "text_thick_rho": spearman(said_thick, m["thick"]),
            "text_slant_rho": spearman(said_slant, m["slant"])}


def eval_captions(group: dict, n: int, seed: int = 0) -> tuple[list[str], dict]:
    """``n`` held-out items (seeded draw) and their full captions, one sentence form each in turn."""
    from ..data.captions import full_caption

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(group["y"]), generator=g)[:n]
    fields = {k: group[k][idx] for k in ("y", "fg", "bg", "thick", "slant", "height")}
    caps = [full_caption(int(fields["y"][i]), int(fields["fg"][i]), int(fields["bg"][i]), float(fields["thick"][i]),
                         float(fields["slant"][i]), float(fields["height"][i]), form=i) for i in range(len(idx))]
    return caps, fields


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise RMS pixel difference of images drawn for one caption (in [-1, 1] units)."""
    flat = images.float().flatten(1)
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    n = len(flat)
    return float(d.sum() / (n * (n - 1)))


def text_metrics(model, test, n: int = 1000, seed: int = 0, use_ema: bool = True, n_diversity: int = 10,
                 k_diversity: int = 16) -> dict:
    """Caption agreement, Frechet distance (digit features of the uncoloured digits) against the
    held-out images, and the diversity for one caption (mean over ``n_diversity`` captions of
    ``k_diversity`` images each); for StackGAN also the Frechet distance of Stage-I's images
    upsampled to Stage-II's size. ``test``: the held-out captioned RawData."""
    import torch.nn.functional as F

    from .features import DigitsExtractor
    from .frechet import frechet_distance_from_features

    source = digit_source(test.name)
    if source is None:
        return {}
    group = test.groups["data"]
    n = min(n, len(group["y"]))
    caps, fields = eval_captions(group, n, seed)
    inputs = model.sample_inputs(n, torch.Generator().manual_seed(seed), text=caps)
    out = {"text_n": n}
    ex = DigitsExtractor(f"{source}-color")
    real_f = ex.extract(test.x)[0]
    if hasattr(model, "stages"):
        low, images = model.stages(inputs, use_ema)
        up = F.interpolate(low, size=images.shape[-2:], mode="bilinear", align_corners=False)
        out["fd_stage1_up"] = frechet_distance_from_features(real_f, ex.extract(up)[0])
        out.update({f"stage1_{k}": v for k, v in agreement(low, fields, source).items()})
    else:
        images = model.generate_eval(inputs, use_ema)
    out["fd"] = frechet_distance_from_features(real_f, ex.extract(images)[0])
    out.update(agreement(images, fields, source))
    divs, divs1 = [], []
    for i in range(min(n_diversity, n)):
        one = model.sample_inputs(k_diversity, torch.Generator().manual_seed(seed + 1 + i), text=[caps[i]])
        if hasattr(model, "stages"):
            low, x = model.stages(one, use_ema)
            divs1.append(diversity(low))
        else:
            x = model.generate_eval(one, use_ema)
        divs.append(diversity(x))
    out["diversity"] = float(np.mean(divs))
    if divs1:
        out["stage1_diversity"] = float(np.mean(divs1))
    return out


def real_text_metrics(test, n: int = 1000, seed: int = 0) -> dict:
    """The ceiling: held-out images measured against captions made from their own attributes, and
    the Frechet distance between two random halves of the held-out set."""
    from .features import DigitsExtractor
    from .frechet import frechet_distance_from_features

    source = digit_source(test.name)
    if source is None:
        return {}
    group = test.groups["data"]
    n = min(n, len(group["y"]))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(group["y"]), generator=g)[:n]
    out = {"text_n": n, **agreement(test.x[idx], {k: group[k][idx] for k in ("y", "fg", "bg", "thick", "slant")},
                                    source)}
    perm = torch.randperm(len(test.x), generator=g)
    f = DigitsExtractor(f"{source}-color").extract(test.x)[0]
    half = len(perm) // 2
    out["fd"] = frechet_distance_from_features(f[perm[:half]], f[perm[half:]])
    return out
