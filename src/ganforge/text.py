"""The text encoder of the text-to-image models, trained here with Reed et al.'s joint embedding.

Reed, Akata, Lee & Schiele, "Learning Deep Representations of Fine-Grained Visual Descriptions"
(CVPR 2016): an image encoder phi and a text encoder psi are trained together so that the
compatibility F(v, t) = phi(v) . psi(t) of an image with a description of its own class beats
that with descriptions of other classes by a margin, in both directions (the symmetric structured
joint embedding, DS-SJE): for each image, hinge[1 + F(v, t') - F(v, t)] over texts t' of other
classes, and for each text, hinge[1 + F(v', t) - F(v, t)] over images v' of other classes,
averaged over a minibatch. Here the text encoder is word-level (an embedding and a bidirectional
GRU whose outputs are averaged over the words, as Reed's char-CNN-RNN averages its hidden units),
and a "class" is everything a digit caption can say: digit, colours, thickness and slant words
(the class label alone for ``captions:PATH``). Only psi is kept, saved with the vocabulary.
On the digit caption sets each image's own caption with one word swapped (digit, colour, thin/thick,
slant) is a further negative (``te_swaps``): random captions differ in a colour almost always, so
without it the digit word is barely learnt.

``ganforge train-text-encoder --data mnist-captions`` trains and caches one; the text models
train it on first use from their training data (``GANModel.prepare``) when none is cached.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data.captions import Vocabulary
from .errors import ConfigError, GanforgeError
from .nn.spectral import spectral_norm_ready

ENCODER_DEFAULTS = {"te_dim": 128, "te_hidden": 64, "te_words": 32, "te_steps": 1500, "te_batch": 128,
                    "te_lr": 1e-3, "te_swaps": True}


class TextEncoder(nn.Module):
    """psi: word indices (N, L), 0 = padding -> embedding (N, out_dim)."""

    def __init__(self, vocab_size: int, out_dim: int = 128, hidden: int = 64, words: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, words, padding_idx=0)
        self.rnn = nn.GRU(words, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, tokens):
        tokens = tokens.long()
        lengths = (tokens != 0).sum(1).clamp_min(1)
        # Packed, so that the backward direction starts at the last word whatever the padding: a
        # caption has one embedding however long the batch it comes in.
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                                total_length=tokens.shape[1])
        # the mean of the word states: every word counts the same wherever it stands in the caption
        return self.out(h.sum(1) / lengths[:, None].to(h.dtype))


class ImageEncoder(nn.Module):
    """phi, used only while training psi: three strided convolutions and a linear layer."""

    def __init__(self, channels: int, out_dim: int, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * width, out_dim))

    def forward(self, x):
        if x.shape[-1] > 32:  # 64x64 sets: the encoder sees them at 32x32, as digits are seen at 28x28
            x = F.interpolate(x, size=(32, 32), mode="area")
        return self.net(x)


def pair_classes(group: dict) -> torch.Tensor:
    """The "class" of each item for the joint embedding's margin: what its captions can tell apart."""
    from .data.captions import slant_level, thickness_level

    y = group["y"].long()
    if "fg" not in group:
        return y
    return (((y * 8 + group["fg"]) * 8 + group["bg"]) * 3 + thickness_level(group["thick"]) + 1) * 4 \
        + slant_level(group["slant"]) + 1


def joint_embedding_loss(v: torch.Tensor, t: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """DS-SJE on a minibatch of matching (image, text) pairs: the mean hinge over other-class pairs,
    image -> texts and text -> images, margin 1 (Reed et al. 2016, eqs. 2-4 with Delta = 0/1)."""
    scores = v @ t.t()  # F(v_i, t_j)
    other = (classes[:, None] != classes[None, :]).float()
    right = scores.diagonal()
    img = (F.relu(1 + scores - right[:, None]) * other).sum(1) / other.sum(1).clamp_min(1)
    txt = (F.relu(1 + scores - right[None, :]) * other).sum(0) / other.sum(0).clamp_min(1)
    return img.mean() + txt.mean()


def swap_groups(vocab: Vocabulary) -> list[torch.Tensor]:
    """Word groups whose members exclude each other in a digit caption (the digit, a colour,
    thin/thick, the slant words): swapping one member for another makes a false caption. Only
    groups wholly in ``vocab`` count, so a real caption set (``captions:PATH``) has none."""
    from .data.captions import DIGIT_WORDS, SLANT_WORDS, THICK_WORDS
    from .data.translation import COLOR_NAMES

    out = []
    for words in (DIGIT_WORDS, COLOR_NAMES, tuple(THICK_WORDS.values()), tuple(SLANT_WORDS.values())):
        if all(w in vocab.index for w in words):
            out.append(torch.tensor([vocab.index[w] for w in words]))
    return out


def swapped_captions(tokens: torch.Tensor, groups, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each caption (N, L) and each group, the caption with one of that group's words (chosen at
    random) replaced by another member: (G, N, L) false captions and a (G, N) mask of those that
    exist (a caption without a word of the group has no such negative)."""
    negs, masks = [], []
    for grp in groups:
        grp = grp.to(tokens.device)
        hit = (tokens[..., None] == grp).any(-1)  # (N, L)
        # a random position among the hits: the largest random key over hit positions
        key = torch.rand(tokens.shape, generator=generator).to(tokens.device) * hit
        pos = key.argmax(1)
        rows = torch.arange(len(tokens), device=tokens.device)
        word = tokens[rows, pos]
        member = (word[:, None] == grp).float().argmax(1)
        shift = torch.randint(1, len(grp), (len(tokens),), generator=generator).to(tokens.device)
        t = tokens.clone()
        has = hit.any(1)
        t[rows, pos] = torch.where(has, grp[(member + shift) % len(grp)].to(t.dtype), word)
        negs.append(t)
        masks.append(has)
    return torch.stack(negs), torch.stack(masks)


def swap_loss(v: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hinge of the joint embedding against each image's own caption with one word swapped:
    hinge[1 + F(v, t_swapped) - F(v, t)], averaged over the negatives that exist."""
    right = (v * t).sum(1)  # (N,)
    wrong = (v[None] * t_neg).sum(2)  # (G, N)
    m = mask.float()
    return (F.relu(1 + wrong - right[None]) * m).sum() / m.sum().clamp_min(1)


def pick_captions(tokens: torch.Tensor, generator=None) -> torch.Tensor:
    """One of the K captions of each item, at random: (N, K, L) -> (N, L) int64."""
    k = torch.randint(tokens.shape[1], (len(tokens),), generator=generator).to(tokens.device)
    return tokens[torch.arange(len(tokens), device=tokens.device), k].long()


@torch.no_grad()
def retrieval_accuracy(enc: TextEncoder, img: ImageEncoder, group: dict, n: int = 500, seed: int = 0) -> float:
    """Share of ``n`` held-out captions whose best-scoring image among the ``n`` is of their class."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(group["x"]), generator=g)[:n]
    sub = {k: v[idx] for k, v in group.items()}
    x = sub["x"].float() / 127.5 - 1
    s = img(x) @ enc(pick_captions(sub["tokens"], g)).t()  # (images, texts)
    best = s.argmax(0)
    cls = pair_classes(sub)
    return float((cls[best] == cls).float().mean())


def train_encoder(raw, cfg: dict | None = None, seed: int = 0, progress: bool = True, held_out=None) -> dict:
    """Train psi (with phi) on captioned data ``raw``; returns the saveable record."""
    c = {**ENCODER_DEFAULTS, **{k: v for k, v in (cfg or {}).items() if k in ENCODER_DEFAULTS}}
    group = raw.groups["data"]
    vocab = raw.vocab
    torch.manual_seed(seed)
    enc = TextEncoder(len(vocab), c["te_dim"], c["te_hidden"], c["te_words"])
    img = ImageEncoder(raw.x.shape[1], c["te_dim"])
    opt = torch.optim.Adam([*enc.parameters(), *img.parameters()], lr=c["te_lr"])
    g = torch.Generator().manual_seed(seed)
    n, b = len(group["x"]), min(c["te_batch"], len(group["x"]))
    classes = pair_classes(group)
    groups = swap_groups(vocab) if c["te_swaps"] else []
    t0, loss = time.time(), None
    for step in range(c["te_steps"]):
        idx = torch.randint(n, (b,), generator=g)
        x = group["x"][idx].float() / 127.5 - 1
        tok = pick_captions(group["tokens"][idx], g)
        v, t = img(x), enc(tok)
        loss = joint_embedding_loss(v, t, classes[idx])
        if groups:
            # Two captions of random images nearly always differ in a colour already, so the
            # batch's other-class texts are beaten on colour alone and the digit word is left
            # almost unlearnt (digit captions then embed 4x closer together than colour ones).
            # The same caption with one word swapped differs in that word only.
            neg, mask = swapped_captions(tok, groups, g)
            t_neg = enc(neg.flatten(0, 1)).view(*neg.shape[:2], -1)
            loss = loss + swap_loss(v, t, t_neg, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress and (step + 1) % 250 == 0:
            print(f"text encoder: step {step + 1}/{c['te_steps']}, DS-SJE loss {float(loss):.4f}", flush=True)
    record = {"vocab": vocab.words[2:], "state": enc.state_dict(), "arch": {k: c[k] for k in ("te_dim", "te_hidden",
              "te_words")}, "steps": c["te_steps"], "swaps": bool(groups), "seed": seed, "data": raw.name,
              "loss": float(loss.detach()), "seconds": time.time() - t0}
    enc.eval(), img.eval()
    if held_out is not None:
        record["retrieval"] = retrieval_accuracy(enc, img, held_out.groups["data"])
    return record


def encoder_from(record: dict) -> tuple[TextEncoder, Vocabulary]:
    vocab = Vocabulary(record["vocab"])
    a = record["arch"]
    enc = TextEncoder(len(vocab), a["te_dim"], a["te_hidden"], a["te_words"])
    enc.load_state_dict(record["state"])
    return enc.eval().requires_grad_(False), vocab


def cache_root() -> Path:
    env = os.environ.get("GANFORGE_CACHE")
    if env:
        return Path(env).expanduser() / "text-encoders"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ganforge" / "text-encoders"


def default_path(data: str, cfg: dict | None = None, seed: int = 0) -> Path:
    """Where the encoder for ``data``'s training split with these settings is cached."""
    from .data import parse_name

    base = parse_name(data)[0]
    c = {**ENCODER_DEFAULTS, **{k: v for k, v in (cfg or {}).items() if k in ENCODER_DEFAULTS}}
    key = hashlib.sha1(repr((base, sorted(c.items()), seed)).encode()).hexdigest()[:10]
    stem = base if ":" not in base else "captions-" + hashlib.sha1(base.encode()).hexdigest()[:8]
    return cache_root() / f"{stem}-{key}.pt"


def save_encoder(record: dict, path: Path) -> Path:
    from .files import atomic_save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(record, path)
    return path


def load_encoder_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"text encoder {path} not found; make one with `ganforge train-text-encoder --data DATA`")
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        raise GanforgeError(f"cannot read text encoder {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(rec, dict) or "vocab" not in rec or "state" not in rec:
        raise GanforgeError(f"{path} is not a ganforge text encoder")
    return rec


def train_text_encoder(data: str, out=None, cfg: dict | None = None, seed: int = 0, root=None,
                       progress: bool = True) -> tuple[Path, dict]:
    """``ganforge train-text-encoder``: train on ``data``'s training split, report retrieval on its
    test split, save to ``out`` (default: the cache where the text models look)."""
    from .data import eval_data_name, load_data

    raw = load_data(data, root=root)
    if getattr(raw, "vocab", None) is None:
        raise ConfigError(f"{data} has no captions; use mnist-captions, digits-captions or captions:PATH")
    held_name = eval_data_name(data)
    held = load_data(held_name, root=root) if held_name != data else None
    rec = train_encoder(raw, cfg, seed, progress, held_out=held)
    path = save_encoder(rec, Path(out) if out else default_path(data, cfg, seed))
    return path, rec


# ---- networks conditioned on a text embedding (GAN-INT-CLS, StackGAN) ----------------------------

class TextProjection(nn.Sequential):
    """Reed et al.: the embedding compressed by a fully connected layer and a leaky ReLU (to 128 there)."""

    def __init__(self, e_dim: int, t_dim: int):
        super().__init__(nn.Linear(e_dim, t_dim), nn.LeakyReLU(0.2))


class TextG(nn.Module):
    """G(z, e): the compressed embedding joined to z, then the DCGAN generator."""

    def __init__(self, e_dim: int, t_dim: int, z_dim: int, channels: int, image_size: int, width: int,
                 first_norm: str = "channel"):
        super().__init__()
        from .nn import DCGANGenerator, dcgan_init

        self.proj = TextProjection(e_dim, t_dim)
        dcgan_init(self.proj)
        self.net = DCGANGenerator(z_dim + t_dim, channels, image_size, width)
        if first_norm == "unit":
            # Batch statistics per unit of the projected map (each channel at each position), not per
            # channel over positions: a part of the first layer's output that is the same for every
            # sample (a fixed template, e.g. from the compressed embedding's mean) is removed.
            fc, view, bn = self.net.net[0], self.net.net[1], self.net.net[2]
            unit = nn.BatchNorm1d(fc.out_features)
            dcgan_init(unit)
            self.net.net[0] = nn.Sequential(fc, unit)
            self.net.net[2] = nn.Identity()

    def forward(self, z, e):
        return self.net(torch.cat([z, self.proj(e)], 1))


def contrast_map(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's distance from the image's background colour (the mean of its 1-pixel border),
    divided by the image's largest such distance, in [-1, 1]: a coloured digit's shape whatever its
    two colours (``uncolor``'s grey digit, up to its scale), differentiable in ``x``."""
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], 2)
    d = (x - border.mean(2)[:, :, None, None]).pow(2).sum(1, keepdim=True).add(1e-6).sqrt()
    return 2 * d / d.flatten(1).max(1).values[:, None, None, None] - 1


@spectral_norm_ready
class TextD(nn.Module):
    """D(x, e): DCGAN's conv body down to a small map, the compressed embedding replicated over it and
    joined as channels, a 1x1 conv, then one logit (Reed et al. 2016, Fig. 2; StackGAN's D too).

    ``mbstd`` > 0: ProGAN's minibatch standard deviation (over groups of ``mbstd`` samples) joined to
    the body's map as one more channel, so that D can see a batch of one repeated shape. ``contrast``: the image's
    :func:`contrast_map` joined to its channels at D's input (the digit's shape without its colours). ``mbd`` > 0:
    minibatch discrimination (Salimans et al. 2016) with that many kernels on the joint features."""

    def __init__(self, e_dim: int, t_dim: int, channels: int, image_size: int, width: int, norm: str = "batch",
                 mbstd: int = 0, contrast: bool = False, mbd: int = 0):
        super().__init__()
        from .nn import DCGANDiscriminator, dcgan_init
        from .nn.dcgan import _norm, dcgan_stages
        from .nn.improved import MinibatchDiscrimination
        from .nn.progressive import MinibatchStdDev

        base, k = dcgan_stages(image_size)
        # norm: "batch" as in the paper; "layer" normalises each image on its own (see d_norm)
        self.contrast = contrast
        self.body = DCGANDiscriminator(channels + contrast, image_size, width, norm=norm).body[:-1]  # no Flatten
        ch = width * 2 ** (k - 1)
        self.mbstd = MinibatchStdDev(mbstd) if mbstd else None
        self.proj = TextProjection(e_dim, t_dim)
        flat = ch * base * base
        # mbd > 0: Salimans et al.'s minibatch discrimination (mbd kernels of 5) before the logit
        mbd_layers = [MinibatchDiscrimination(flat, mbd, 5)] if mbd else []
        self.joint = nn.Sequential(nn.Conv2d(ch + t_dim + (1 if mbstd else 0), ch, 1, bias=False), _norm(norm, ch),
                                   nn.LeakyReLU(0.2), nn.Flatten(), *mbd_layers, nn.Linear(flat + mbd, 1))
        dcgan_init(self.proj)
        dcgan_init(self.joint)

    def forward(self, x, e):
        h = self.body(torch.cat([x, contrast_map(x)], 1) if self.contrast else x)
        if self.mbstd is not None:
            h = self.mbstd(h)
        t = self.proj(e)[:, :, None, None].expand(-1, -1, *h.shape[-2:])
        return self.joint(torch.cat([h, t.to(h.dtype)], 1)).squeeze(1)


class ConditioningAugmentation(nn.Module):
    """StackGAN's CA: the embedding gives the mean and log-variance of a diagonal Gaussian, and the
    condition c = mu + sigma * eps is drawn from it; ``kl`` is KL(N(mu, sigma^2) || N(0, I)).
    ``sample=False`` gives c = mu (no noise; the ablation without CA also drops the KL term)."""

    def __init__(self, e_dim: int, c_dim: int, sample: bool = True):
        super().__init__()
        self.fc = nn.Linear(e_dim, 2 * c_dim)
        self.c_dim, self.sample = c_dim, sample

    def forward(self, e, eps):
        mu, logvar = self.fc(e).chunk(2, 1)
        c = mu + torch.exp(0.5 * logvar) * eps if self.sample else mu
        return c, mu, logvar

    @staticmethod
    def kl(mu, logvar):
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
