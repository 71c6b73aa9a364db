"""Captioned images for text-to-image models: generated digit captions, and the CUB / Oxford-102 layout.

``mnist-captions`` / ``digits-captions`` (offline, checkable): every digit of ``mnist-color`` /
``digits-color`` (the digit in a foreground and background colour of the named palette, drawn per
image by :mod:`.translation`) gets ``CAPTIONS_PER_IMAGE`` captions generated from its label, its
two colours and attributes measured on the grey digit (:func:`measure`): stroke thickness, slant
and height. Every word can be checked on the image: an attribute whose value falls between two
words' ranges is left unsaid rather than guessed, e.g. "a thin, right-leaning seven in red on
blue". The fields kept per image (``y``, ``fg``, ``bg``, ``thick``, ``slant``, ``height``) are what a
generated image is measured against (metrics/text.py).

``captions:PATH``: the layout of Reed et al.'s CUB-200 and Oxford-102 caption sets: ``PATH/text_c10/
CLASS/NAME.txt`` (one caption a line), the image ``PATH/images/CLASS/NAME.jpg`` (CUB) or
``PATH/jpg/NAME.jpg`` (Oxford-102), and the published class split ``PATH/trainvalclasses.txt`` /
``PATH/testclasses.txt``. Where StackGAN's pre-computed char-CNN-RNN embeddings are there
(``PATH/{train,test}/char-CNN-RNN-embeddings.pickle`` with ``filenames.pickle``) they come as the
field ``emb`` (N, captions, dim), which the text models use instead of their own encoder.

Batches hold ``x`` (the image), ``y``, ``tokens`` (N, K, L) int16 word indices (0 = padding) of K
captions; the vocabulary (``raw.vocab``) is fixed by the grammar for the digit sets and is the
training split's words for ``captions:PATH``.
"""
from __future__ import annotations

import functools
import pickle
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .base import RawData, resize_images

CAPTIONS_PER_IMAGE = 5
MAX_WORDS = 32
PAD, UNK = "<pad>", "<unk>"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Ranges of the measured attributes (on the 28x28 grey digit) that a word may describe, chosen on
# MNIST's training images so that each word covers about a quarter of them; values between two
# ranges get no word, so every word said is plainly true.
THIN, THICK = 1.65, 2.3  # stroke width in pixels, 2 * ink area / ink perimeter
LEFT, UPRIGHT, RIGHT = -0.1, (-0.05, 0.15), 0.3  # shear dx/dy of the ink (positive: top to the right)
SMALL = 17  # ink height in rows; MNIST's digits are normalised to a 20-pixel box, so "small" is rare
THICK_WORDS = {-1: "thin", 1: "thick"}
SLANT_WORDS = {-1: "left-leaning", 0: "upright", 1: "right-leaning"}
_SPLIT_SEED = {"train": 0xCA_0001, "test": 0xCA_0002, "val": 0xCA_0003, "train-val": 0xCA_0004}
# Sentence forms; {adj} is a comma-separated list of the attribute words (may be empty).
TEMPLATES = (
    "a {adj} {digit} in {fg} on {bg}",
    "a {adj} {fg} {digit} on a {bg} background",
    "the digit {digit}, {adj}, drawn in {fg} on {bg}",
    "a {bg} image with a {adj} {fg} {digit}",
    "this is a {adj} number {digit} written in {fg} on a {bg} background",
    "{fg} ink on {bg}: a {adj} {digit}",
)


def _color_names() -> tuple[str, ...]:
    from .translation import COLOR_NAMES
    return COLOR_NAMES


def tokenize(text: str) -> list[str]:
    """Lower-case words (hyphenated words stay whole: ``right-leaning``); punctuation is dropped."""
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())


def grammar_words() -> list[str]:
    """Every word the digit-caption grammar can produce, sorted: the digit sets' vocabulary."""
    words = {"an"} | set(DIGIT_WORDS) | set(_color_names()) | set(THICK_WORDS.values()) | set(SLANT_WORDS.values()) | {"small"}
    for t in TEMPLATES:
        words |= set(tokenize(re.sub(r"\{\w+\}", " ", t)))
    return sorted(words)


class Vocabulary:
    """Words <-> indices; 0 is padding, 1 the unknown word (only ever used for real caption sets)."""

    def __init__(self, words):
        words = [w for w in words if w not in (PAD, UNK)]
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.words = [PAD, UNK, *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """Indices of ``text``'s words; an unknown word is a one-line ConfigError (``unknown="error"``)
        or the unknown index (``"unk"``)."""
        words = tokenize(text)
        if not words:
            raise ConfigError(f"the caption {text!r} has no words")
        if unknown == "error":
            bad = [w for w in words if w not in self.index]
            if bad:
                shown = ", ".join(repr(w) for w in dict.fromkeys(bad))
                raise ConfigError(f"unknown word{'s' * (len(set(bad)) > 1)} {shown} in {text!r}; the model knows "
                                  f"{len(self) - 2} words: {' '.join(self.words[2:60])}"
                                  f"{' ...' if len(self) > 62 else ''}")
        return [self.index.get(w, 1) for w in words]

    def decode(self, indices) -> str:
        return " ".join(self.words[int(i)] for i in indices if int(i) != 0)

    def encode_batch(self, texts, length: int | None = None, unknown: str = "error") -> torch.Tensor:
        """(N, L) int64 indices, padded with 0 (L: the longest caption, at most ``MAX_WORDS``)."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ConfigError("no captions given")
        ids = [self.encode(t, unknown)[:MAX_WORDS] for t in texts]
        width = length or max(map(len, ids))
        out = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            out[i, :min(len(row), width)] = row[:width]
        return torch.from_numpy(out)


# ---- attributes measured on the grey digit ------------------------------------------------------

def measure(a: torch.Tensor) -> dict:
    """Thickness, slant and height of grey digits ``a`` (N, 1, H, W) uint8 (ink bright), at 28x28.

    ``thick``: 2 * ink area / ink perimeter (pixels at >= 128, 4-neighbour edges), about the
    stroke width for long strokes. ``slant``: -mu11 / mu02 of the ink mass (the shear that would
    make it upright; positive = the top leans right). ``height``: rows holding ink >= 128."""
    if a.ndim != 4 or a.shape[1] != 1:
        raise DataError(f"measure() takes grey images (N, 1, H, W), got shape {tuple(a.shape)}")
    if a.dtype != torch.uint8:
        a = ((a.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if a.shape[-1] != 28 or a.shape[-2] != 28:
        a = resize_images(a, 28)
    g = a.float() / 255
    ink = (g >= 0.5).float()
    area = ink.flatten(1).sum(1)
    p = F.pad(ink, (1, 1, 1, 1))
    perim = (p[..., 1:, :] != p[..., :-1, :]).flatten(1).sum(1) + (p[..., :, 1:] != p[..., :, :-1]).flatten(1).sum(1)
    thick = 2 * area / perim.clamp_min(1)
    n = torch.arange(28, dtype=torch.float32)
    m = g.flatten(1).sum(1).clamp_min(1e-6)
    my = (g * n.view(1, 1, 28, 1)).flatten(1).sum(1) / m
    mx = (g * n.view(1, 1, 1, 28)).flatten(1).sum(1) / m
    dy = n.view(1, 1, 28, 1) - my.view(-1, 1, 1, 1)
    dx = n.view(1, 1, 1, 28) - mx.view(-1, 1, 1, 1)
    mu11 = (g * dx * dy).flatten(1).sum(1) / m
    mu02 = (g * dy * dy).flatten(1).sum(1) / m
    slant = -mu11 / mu02.clamp_min(1e-6)
    height = (ink.amax(3).squeeze(1) > 0).sum(1).float()
    return {"thick": thick, "slant": slant, "height": height}


def thickness_level(thick: torch.Tensor) -> torch.Tensor:
    """-1 thin, +1 thick, 0 between (no word)."""
    return (thick >= THICK).long() - (thick <= THIN).long()


def slant_level(slant: torch.Tensor) -> torch.Tensor:
    """-1 left-leaning, 0 upright, +1 right-leaning, 2 between two words' ranges (no word)."""
    lev = torch.full_like(slant, 2, dtype=torch.long)
    lev[slant <= LEFT] = -1
    lev[(slant >= UPRIGHT[0]) & (slant <= UPRIGHT[1])] = 0
    lev[slant >= RIGHT] = 1
    return lev


def attribute_words(thick: float, slant: float, height: float) -> list[str]:
    """The words that are true of a digit with these measurements (possibly none)."""
    words = []
    t = int(thickness_level(torch.tensor([thick]))[0])
    if t:
        words.append(THICK_WORDS[t])
    s = int(slant_level(torch.tensor([slant]))[0])
    if s != 2:
        words.append(SLANT_WORDS[s])
    if height <= SMALL:
        words.append("small")
    return words


@functools.lru_cache(maxsize=1)
def _color_names_cached() -> tuple[str, ...]:
    return _color_names()


def caption(digit: int, fg: int, bg: int, words: list[str], form: int) -> str:
    colors = _color_names_cached()
    adj = ", ".join(words)
    text = TEMPLATES[form % len(TEMPLATES)].format(adj=adj, digit=DIGIT_WORDS[digit], fg=colors[fg], bg=colors[bg])
    text = re.sub(r"\s+", " ", text.replace(", ,", ",").replace(" ,", ",")).strip()
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def _hash(index, split: str, salt: int) -> np.ndarray:
    """Well-spread uint64s per item, keyed by (split, position, salt): the per-image draws of the
    captions, independent of which part of the split is loaded (as the colours are)."""
    from .translation import _mix

    idx = np.asarray(index, dtype=np.uint64)
    return _mix(idx * np.uint64(1 << 12) + np.uint64(salt) + np.uint64(_SPLIT_SEED[split]) * np.uint64(1 << 40))


def make_captions(y, fg, bg, attrs: dict, index, split: str, k: int = CAPTIONS_PER_IMAGE) -> list[list[str]]:
    """``k`` captions per image, drawn from hashes of (split, the image's position): the same image
    gets the same captions whichever part of the split is loaded. Each caption names the digit and
    both colours; each true attribute word is said with probability 3/4, in an order drawn too."""
    thick = thickness_level(torch.as_tensor(attrs["thick"])).numpy()
    slant = slant_level(torch.as_tensor(attrs["slant"])).numpy()
    small = (torch.as_tensor(attrs["height"]) <= SMALL).numpy()
    y, fg, bg = (np.asarray(v) for v in (y, fg, bg))
    draws = [_hash(index, split, j) for j in range(k)]
    out = []
    for i in range(len(y)):
        true = ([THICK_WORDS[int(thick[i])]] if thick[i] else []) + \
            ([SLANT_WORDS[int(slant[i])]] if slant[i] != 2 else []) + (["small"] if small[i] else [])
        caps = []
        for j in range(k):
            h = int(draws[j][i])
            words = [w for b, w in enumerate(true) if (h >> (2 * b)) & 3]  # kept with probability 3/4
            if len(words) > 1 and (h >> 8) & 1:
                words.reverse()
            caps.append(caption(int(y[i]), int(fg[i]), int(bg[i]), words, (h >> 16) % len(TEMPLATES)))
        out.append(caps)
    return out


def full_caption(y: int, fg: int, bg: int, thick: float, slant: float, height: float, form: int = 0) -> str:
    """The caption saying every true attribute, for measuring generated images (metrics/text.py)."""
    return caption(y, fg, bg, attribute_words(thick, slant, height), form)


def _tokens(vocab: Vocabulary, captions: list[list[str]], unknown: str = "error") -> torch.Tensor:
    k = max(len(c) for c in captions)
    flat = [c[j % len(c)] for c in captions for j in range(k)]  # fewer than k: repeated
    ids = vocab.encode_batch(flat, unknown=unknown)
    return ids.view(len(captions), k, -1).to(torch.int16)


def digit_captions(src: RawData, index, split: str, name: str, image_size: int | None = None) -> RawData:
    """The captioned set made from grey digits ``src`` (items at positions ``index`` of ``split``)."""
    from .translation import DERIVED

    a = src.x if src.x.shape[-1] == 28 else resize_images(src.x, 28)
    made = DERIVED["color"].make(a, torch.as_tensor(index), split)  # {"B": coloured, "fg", "bg"}
    attrs = measure(a)
    vocab = Vocabulary(grammar_words())
    caps = make_captions(src.y, made["fg"], made["bg"], attrs, index, split)
    x = made["B"]
    if image_size and image_size != x.shape[-1]:
        x = resize_images(x, int(image_size))
    group = {"x": x, "y": src.y, "tokens": _tokens(vocab, caps), "fg": made["fg"], "bg": made["bg"], **attrs}
    raw = RawData(name, "image", x, src.y, src.n_classes, f"{src.note}; coloured as mnist-color, "
                  f"{CAPTIONS_PER_IMAGE} generated captions per image", src.class_names, groups={"data": group})
    raw.vocab, raw.captions = vocab, caps
    return raw


# ---- captions:PATH (Reed et al.'s CUB-200 / Oxford-102 layout) ----------------------------------

def _class_list(root: Path, split: str) -> list[str]:
    f = root / ("testclasses.txt" if split == "test" else "trainvalclasses.txt")
    if not f.is_file():
        raise DataError(f"captions:{root} has no {f.name} (the published class split); expected the layout "
                        "text_c10/CLASS/NAME.txt, images/CLASS/NAME.jpg or jpg/NAME.jpg, trainvalclasses.txt, "
                        "testclasses.txt")
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]


def _items(root: Path, split: str) -> list[tuple[str, Path, Path]]:
    """(CLASS/NAME, caption file, image file) of a split, sorted."""
    if not (root / "text_c10").is_dir():
        raise DataError(f"captions:{root} has no text_c10/ folder of caption files")
    items = []
    for cls in _class_list(root, split):
        folder = root / "text_c10" / cls
        if not folder.is_dir():
            raise DataError(f"captions:{root}: class {cls} of the {split} split has no folder {folder}")
        for txt in sorted(folder.glob("*.txt")):
            img = next((p for p in (root / "images" / cls / f"{txt.stem}.jpg", root / "jpg" / f"{txt.stem}.jpg",
                                    root / "images" / cls / f"{txt.stem}.png") if p.is_file()), None)
            if img is None:
                raise DataError(f"captions:{root}: no image for {txt.relative_to(root)} (looked in images/{cls}/ "
                                "and jpg/)")
            items.append((f"{cls}/{txt.stem}", txt, img))
    if not items:
        raise DataError(f"captions:{root}: the {split} split has no caption files")
    return items


def _read_captions(path: Path) -> list[str]:
    caps = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if tokenize(ln)]
    if not caps:
        raise DataError(f"{path} holds no caption")
    return caps


def _embeddings(root: Path, split: str, keys: list[str]):
    """StackGAN's pickled char-CNN-RNN embeddings for ``keys``, or None where the files are absent."""
    folder = root / ("test" if split == "test" else "train")
    emb_f, names_f = folder / "char-CNN-RNN-embeddings.pickle", folder / "filenames.pickle"
    if not emb_f.is_file() or not names_f.is_file():
        return None
    with open(emb_f, "rb") as f:
        emb = np.asarray(pickle.load(f, encoding="latin1"), dtype=np.float32)
    with open(names_f, "rb") as f:
        names = [str(n) for n in pickle.load(f, encoding="latin1")]
    if emb.ndim == 2:
        emb = emb[:, None]
    where = {n: i for i, n in enumerate(names)}
    missing = [k for k in keys if k not in where]
    if missing:
        raise DataError(f"{names_f} has no embedding for {missing[0]} ({len(missing)} items missing)")
    return torch.from_numpy(emb[[where[k] for k in keys]])


def load_caption_folder(path, split: str = "train", image_size: int = 64, part=None) -> RawData:
    from .folder import _read

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"captions data folder {root} does not exist")
    if split not in ("train", "test"):
        raise DataError(f"captions:PATH has the splits train and test (the published class split), not {split}")
    items = _items(root, split)
    items = items[part] if part is not None else items
    if not items:
        raise DataError(f"the part selects none of captions:{root}'s {split} items")
    train_words = sorted({w for _, txt, _ in _items(root, "train") for c in _read_captions(txt) for w in tokenize(c)})
    vocab = Vocabulary(train_words)
    caps = [_read_captions(txt) for _, txt, _ in items]
    classes = sorted({k.split("/")[0] for k, _, _ in items})
    cls_of = {c: i for i, c in enumerate(_class_list(root, split))}
    y = torch.tensor([cls_of[k.split("/")[0]] for k, _, _ in items])
    s = int(image_size)
    ims = []
    for _, _, img in items:
        im = _read(img, "RGB").resize((s, s))
        ims.append(torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy()))
    x = torch.stack(ims)
    group = {"x": x, "y": y, "tokens": _tokens(vocab, caps, unknown="unk")}
    emb = _embeddings(root, split, [k for k, _, _ in items])
    if emb is not None:
        group["emb"] = emb
    note = f"{len(items):,} captioned images of {len(classes)} classes from {root} ({split} classes)" + \
        (", with pre-computed embeddings" if emb is not None else "")
    raw = RawData(root.name, "image", x, y, len(cls_of), note, _class_list(root, split), groups={"data": group})
    raw.vocab, raw.captions = vocab, caps
    return raw


def check_text(texts) -> list[str]:
    """Captions from ``--text``: one string, or the lines of a file; a one-line error for none."""
    if isinstance(texts, str):
        p = Path(texts)
        if len(texts) < 4096 and p.suffix == ".txt" and " " not in texts.strip():
            if not p.is_file():
                raise ConfigError(f"caption file {p} not found")
            texts = [ln for ln in p.read_text().splitlines() if ln.strip()]
        else:
            texts = [texts]
    texts = [t for t in texts if t is not None]
    if not texts or not any(tokenize(t) for t in texts):
        raise ConfigError("--text needs a caption with at least one word (or a .txt file of captions, one a line)")
    return texts
