"""The built-in digit classifier behind ``--features digits`` and the class metrics.

A small CNN (83 k parameters, 0.34 MB as safetensors) that ships inside the package, so
that a Frechet distance and class coverage can be measured offline, with no Inception download.
Its 128-d penultimate layer gives the features (the role Inception's pool3 plays in FID, after
Heusel et al. 2017); its logits give the predicted classes (as the MNIST classifiers of the mode
counting experiments in Metz et al. 2017 / Srivastava et al. 2017, VEEGAN).

``ganforge train-classifier`` trains it reproducibly (fixed seed, deterministic algorithms):

* ``--data mnist``: on the 60,000 training images, tested on the 10,000 test images; where only
  the test images exist (as on the machines that build ganforge), on the first 8,000 test
  images, tested on the last 2,000.
* ``--data digits``: on scikit-learn's digits as ganforge loads them, holding out every fifth
  image (359 images) to test.
* ``--data mnist-edges`` / ``digits-edges``: the same splits, each image replaced by its edge map
  (:func:`ganforge.data.translation.edges`, the B domain of the derived translation sets), so that
  a translator's edge-map outputs can be classified too (label preservation digit -> edges).

Every image, real or generated, goes through :func:`prepare`: uint8 quantisation, grey, a
resize to 28x28, then [-1, 1]. So a generator's samples are measured exactly the way the
classifier's training images were seen.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError, GanforgeError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SIZE = 28
FEATURE_DIM = 128
# Which weights serve which data set; any other image data set falls back to the MNIST ones.
WEIGHTS = {"mnist": "classifier-mnist.safetensors", "digits": "classifier-digits.safetensors",
           "mnist-edges": "classifier-mnist-edges.safetensors", "digits-edges": "classifier-digits-edges.safetensors"}
TRAIN = {  # steps of batch 128; Adam with a cosine schedule
    "mnist": {"steps": 2000, "lr": 2e-3, "shift": 2},
    "digits": {"steps": 1500, "lr": 2e-3, "shift": 2},
    "mnist-edges": {"steps": 2000, "lr": 2e-3, "shift": 2},
    "digits-edges": {"steps": 1500, "lr": 2e-3, "shift": 2},
}


class DigitNet(nn.Module):
    """Two conv-conv-pool stages and a 128-unit layer: 28x28 grey -> 128 features -> 10 logits."""

    def __init__(self, n_classes: int = 10, width: int = 16, feature_dim: int = FEATURE_DIM):
        super().__init__()

        def conv(cin, cout):
            return [nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        w = width
        # Unpadded 3x3 convolutions: 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, so the dense layer
        # sees 2w * 16 inputs and the whole net stays small.
        self.body = nn.Sequential(*conv(1, w), *conv(w, w), nn.MaxPool2d(2), *conv(w, 2 * w), *conv(2 * w, 2 * w),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * w * 16, feature_dim), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images as uint8: uint8 passes through, floats are read as [-1, 1] (G's tanh range)."""
    if x.dtype == torch.uint8:
        return x
    # Quantised as if saved to PNG, so generated and real images look alike to the extractor.
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, 1, H, W); RGB by the ITU-R 601 luma weights."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise GanforgeError(f"images must have 1 or 3 channels, got {x.shape[1]}")
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def prepare(x: torch.Tensor) -> torch.Tensor:
    """Any images (uint8 or [-1, 1] floats, grey or RGB, any size) -> the classifier's input."""
    if x.ndim != 4:
        raise GanforgeError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    x = to_grey(to_uint8(x))
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x.float(), size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255)
    return x.float().div_(127.5).sub_(1.0)


def weights_path(data: str | None) -> Path:
    from ..data import parse_name  # "mnist[:8000]" and "mnist:test" use the mnist weights

    return ASSETS / WEIGHTS.get(parse_name(data or "mnist")[0], WEIGHTS["mnist"])


def load_classifier(path_or_data: str | Path | None = "mnist", device="cpu") -> tuple[DigitNet, dict]:
    """The classifier (eval mode) and its metadata, from a data set name or a .safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path_or_data) if str(path_or_data).endswith(".safetensors") else weights_path(path_or_data)
    if not path.is_file():
        raise GanforgeError(f"classifier weights not found: {path} (make them with `ganforge train-classifier`)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
        net = DigitNet(n_classes=int(meta.get("n_classes", 10)), width=int(meta.get("width", 16)))
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (SafetensorError, RuntimeError, OSError, ValueError) as e:
        raise GanforgeError(f"cannot load classifier weights {path}: {str(e).splitlines()[0][:200]}") from None
    return net.to(device).eval().requires_grad_(False), meta


def _split(data: str, root=None):
    """(train images, train labels, test images, test labels, description) for a data set."""
    from ..data import load_data

    if data.endswith("-edges"):  # the edge-map domain: the source's split, every image an edge map
        from ..data.translation import edges

        xtr, ytr, xte, yte, desc = _split(data[: -len("-edges")], root)
        return edges(xtr), ytr, edges(xte), yte, f"edge maps of {desc}"
    if data == "digits":
        raw = load_data("digits")
        test = torch.arange(len(raw)) % 5 == 4
        return raw.x[~test], raw.y[~test], raw.x[test], raw.y[test], \
            f"scikit-learn digits at {raw.x.shape[-1]}px: {int((~test).sum())} train, every 5th ({int(test.sum())}) test"
    if data != "mnist":
        raise ConfigError(f"train-classifier trains on {', '.join(TRAIN)}, not {data!r}")
    try:
        train = load_data("mnist", root=root, split="train")
        test = load_data("mnist", root=root, split="test")
        return train.x, train.y, test.x, test.y, "MNIST: 60,000 train images, 10,000 test images"
    except DataError:
        pass
    raw = load_data("mnist", root=root, split="test")  # raises the usual one-line error if absent
    k = len(raw) * 4 // 5
    return raw.x[:k], raw.y[:k], raw.x[k:], raw.y[k:], \
        f"MNIST test images only: first {k:,} to train, last {len(raw) - k:,} to test"


@torch.no_grad()
def predict(net: DigitNet, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    dev = next(net.parameters()).device
    return torch.cat([net(prepare(x[i:i + batch_size]).to(dev)).cpu() for i in range(0, len(x), batch_size)])


def _shift(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """Random translations by up to k pixels, background filled with -1 (black)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (k, k, k, k), value=-1.0)
    dy = torch.randint(0, 2 * k + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * k + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * k)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return out.gather(3, cols)


def train_classifier(data: str = "mnist", out=None, root=None, seed: int = 0, steps: int | None = None,
                     batch_size: int = 128, progress: bool = True, log=print) -> dict:
    """Train the digit classifier and save it (safetensors, atomically); returns its figures."""
    from safetensors.torch import save
    from tqdm.auto import tqdm

    from ..files import atomic_write_bytes

    if data not in TRAIN:
        raise ConfigError(f"train-classifier trains on {', '.join(TRAIN)}, not {data!r}")
    hp = dict(TRAIN[data])
    if steps is not None:
        hp["steps"] = int(steps)
    xtr, ytr, xte, yte, desc = _split(data, root)
    log(f"training the {data} classifier: {desc}; {hp['steps']} steps of {batch_size}, seed {seed}")

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        net = DigitNet()
        xtr_f = prepare(xtr)
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=hp["steps"])
        t0 = time.time()
        net.train()
        perm, pos = torch.randperm(len(xtr_f), generator=g), 0
        for _ in tqdm(range(hp["steps"]), disable=not progress, desc=f"classifier ({data})", unit="step"):
            if pos + batch_size > len(perm):
                perm, pos = torch.randperm(len(xtr_f), generator=g), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            x = _shift(xtr_f[idx], hp["shift"], g)
            loss = F.cross_entropy(net(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        acc = float((predict(net, xte).argmax(1) == yte).float().mean())
        train_acc = float((predict(net, xtr).argmax(1) == ytr).float().mean())
    finally:
        torch.use_deterministic_algorithms(deterministic)

    out = Path(out) if out else weights_path(data)
    meta = {"data": data, "split": desc, "test_accuracy": f"{acc:.6f}", "train_accuracy": f"{train_acc:.6f}",
            "n_train": str(len(xtr)), "n_test": str(len(xte)), "seed": str(seed), "steps": str(hp["steps"]),
            "n_classes": "10", "width": str(net.body[0].out_channels), "input": "1x28x28 in [-1, 1] (see ganforge.metrics.classifier.prepare)"}
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(out, save(state, metadata=meta))
    return {"out": out, "test_accuracy": acc, "train_accuracy": train_acc, "n_train": len(xtr), "n_test": len(xte),
            "split": desc, "seconds": time.time() - t0}
