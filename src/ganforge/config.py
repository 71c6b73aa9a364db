"""Run configuration: one flat dict, resolved from defaults, a YAML file and flags.

Precedence, lowest first: engine defaults, the model's defaults, the model's defaults for the
data's kind (``GANModel.defaults_by_kind``, e.g. for the 2-D point mixtures), ``--config FILE.yaml``,
the named CLI flags, then ``--set key=value``. The resolved dict is what a run records in
``config.yaml`` and what a resumed run reads back.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError, closest

# Settings the engine owns, shared by every model.
ENGINE_DEFAULTS: dict = {
    "model": None,
    "data": "digits",
    "image_size": None,  # None: the data set's native size
    "steps": 2000,  # generator updates ("iterations"); each may use n_critic D updates
    "batch_size": 64,
    "seed": 0,
    "device": "auto",
    "lr": 2e-4,  # Radford et al. 2015
    "betas": [0.5, 0.999],  # beta1 0.5: Radford et al. 2015
    "lr_g": None,  # None: lr
    "lr_d": None,
    "lr_decay": 0.0,  # fraction of the run over which every learning rate falls linearly to 0; 0: constant
    "r1_gamma": 0.0,  # R1 penalty gamma/2 E||grad D(x)||^2 on real data (Mescheder et al. 2018); 0: off
    "n_critic": 1,  # D updates per iteration
    "g_steps": 1,  # G updates per iteration
    "ema": 0.0,  # decay of an EMA copy of G; 0 turns it off
    "ema_rampup": False,  # decay at update t: min(ema, (1 + t) / (10 + t)), so short runs average recent weights
    "amp": "off",  # off | bf16 | fp16 (fp16: CUDA only)
    "compile": False,  # torch.compile each network; falls back to eager with one warning line
    "reuse_fake": True,  # G step reuses the D step's G(z) when n_critic = g_steps = 1 (GANModel.reuses_fake)
    "channels_last": True,  # NHWC for conv nets: +11% for dcgan on the CPU (benchmarks/fastpath.py)
    "sync_bn": False,  # SyncBatchNorm under torchrun (CUDA/NCCL only)
    "log_every": 50,
    "progress_every": 0,  # steps between plain progress lines when stderr is not a terminal; 0: log_every
    "tensorboard": False,  # also write scalars and sample grids as TensorBoard events under RUN/tensorboard/
    "sample_every": 500,
    "ckpt_every": 500,
    "n_samples": 64,
    "eval_every": 0,  # steps between evaluations logged in metrics.jsonl; 0: never
    "eval_n": 1000,  # samples per evaluation during training (kept small: it runs often)
    "eval_metrics": "auto",  # comma-separated, see `ganforge eval --help`; auto: by data kind
    "eval_features": "auto",  # digits | inception; auto: digits for mnist/digits, else inception
    "nan_policy": "stop",  # a non-finite loss: stop (keeping the last good checkpoint) | skip (that update)
    "download": False,
    "skip_bad_images": False,  # folder:PATH: leave out unreadable images (with a warning) rather than refuse
    "data_root": None,  # None: $GANFORGE_DATA or ~/.cache/ganforge/data
    # Improved-GAN techniques (Salimans et al. 2016), for models with the default GAN steps.
    "feature_matching": False,  # G matches the mean of D's features on real data
    "minibatch_discrimination": False,  # D sees each sample's closeness to the rest of its batch
    "mbd_kernels": 100,
    "mbd_kernel_dim": 5,
    "label_smoothing": 0.0,  # one-sided: D's target for real data is 1 - label_smoothing
    "historical_averaging": 0.0,  # weight of ||theta - mean of past theta||^2
    # Spectral normalisation of every conv/linear layer of D (Miyato et al. 2018), for models whose
    # D is built from the shared blocks (nn/spectral.py; GANModel.discriminators); biggan: G and D.
    "spectral_norm": False,
}

LIMITS = {
    "steps": (1, 100_000_000),
    "batch_size": (1, 65_536),
    "n_critic": (1, 1000),
    "g_steps": (1, 1000),
    "log_every": (1, 100_000_000),
    "progress_every": (0, 100_000_000),
    "sample_every": (0, 100_000_000),
    "ckpt_every": (0, 100_000_000),
    "n_samples": (1, 4096),
    "eval_every": (0, 100_000_000),
    "eval_n": (2, 1_000_000),
    "image_size": (4, 4096),
    "mbd_kernels": (1, 4096),
    "mbd_kernel_dim": (1, 4096),
    "seed": (0, 2**63 - 1),
}


def parse_value(text: str):
    """A --set value as YAML: 3 -> int, 1e-4 -> float, true -> bool, [0,0.9] -> list."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_sets(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out


def load_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse {path}: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value, not {type(data).__name__}")
    return data


def _coerce(key, value, default):
    """Check ``value`` against the type of its default, converting where lossless."""
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if kind in (list, tuple):
        # Checked by element, not by length: a schedule may have as many entries as a run needs.
        # Elements follow the default's element at the same place, or its last (empty: any).
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, default[min(i, len(default) - 1)] if default else None)
                for i, v in enumerate(value)]
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def resolve(model_defaults: dict, *layers: dict, by_kind: dict | None = None) -> dict:
    """Merge engine defaults, model defaults and override layers, checking every key.

    ``by_kind`` is a model's ``defaults_by_kind`` ({"points": {...}}): the entry for the kind of the
    data the layers name (the last ``data`` given, else the engine's) sits between the model's
    defaults and the layers, so the user's settings always win and the resolved dict, which a run
    records, holds what was used.
    """
    defaults = {**ENGINE_DEFAULTS, **model_defaults}
    cfg = dict(defaults)
    if by_kind:
        from .data import kind_of

        data = next((layer["data"] for layer in reversed(layers) if layer and "data" in layer), defaults["data"])
        layers = (by_kind.get(kind_of(data), {}), *layers)
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in defaults:
                raise ConfigError(f"unknown setting {key!r}{closest(key, defaults)}")
            cfg[key] = _coerce(key, value, defaults[key])
    check_limits(cfg)
    return cfg


def check_limits(cfg: dict) -> None:
    for key, (lo, hi) in LIMITS.items():
        v = cfg.get(key)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ConfigError(f"{key} must be an integer in [{lo}, {hi}], got {v!r}")
    for key in ("lr", "lr_g", "lr_d", "ema"):
        v = cfg.get(key)
        if v is not None and not (0 <= v < (1 if key == "ema" else 10)):
            raise ConfigError(f"{key} out of range: {v!r}")
    if not 0 <= cfg.get("label_smoothing", 0.0) < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {cfg.get('label_smoothing')!r}")
    for key, ok, what in (("lr_decay", lambda v: 0 <= v <= 1, "a fraction of the run in [0, 1]"),
                          ("r1_gamma", lambda v: v >= 0, "a weight >= 0")):
        v = cfg.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
            raise ConfigError(f"{key} must be {what}, got {v!r}")
    if cfg.get("historical_averaging", 0.0) < 0:
        raise ConfigError(f"historical_averaging is a weight >= 0, got {cfg.get('historical_averaging')!r}")
    if len(cfg.get("betas", (0, 0))) != 2:  # Adam's two decays: a length that means something
        raise ConfigError(f"betas must be a list of 2 numbers, got {cfg.get('betas')!r}")
    if cfg.get("nan_policy") not in ("stop", "skip"):
        raise ConfigError(f"nan_policy must be stop or skip, got {cfg.get('nan_policy')!r}")
    if cfg.get("amp") not in ("off", "bf16", "fp16"):
        raise ConfigError(f"amp must be off, bf16 or fp16, got {cfg.get('amp')!r}")
    if cfg.get("device") not in ("auto", "cpu", "cuda") and not str(cfg.get("device")).startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {cfg.get('device')!r}")


def save_yaml(cfg: dict, path) -> None:
    from .files import atomic_write_bytes

    atomic_write_bytes(Path(path), yaml.safe_dump(cfg, sort_keys=True).encode())
