"""The ``ganforge`` command: a thin layer over the library.

Every user mistake surfaces as one line on stderr and exit code 2; Ctrl-C during training saves
a checkpoint and exits with 130.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConfigError, GanforgeError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"ganforge: error: {message} (see `{self.prog} --help`)\n")


def _table(rows, header) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def data_needs(cls) -> str:
    if getattr(cls, "data_desc", None):
        return cls.data_desc
    kinds = {"image": "images", "points": "2-D points"}
    what = " or ".join(kinds[k] for k in cls.data_kinds)
    return f"labelled {what}" if cls.needs_labels else what


def cmd_list(args) -> int:
    from .registry import get_model_class, model_names

    order = {"foundations": 0, "objectives": 1, "divergences": 2, "conditional": 3, "encoders": 4, "translation": 5,
             "advanced": 6}
    classes = sorted((get_model_class(n) for n in model_names()), key=lambda c: (order.get(c.family, 9), c.year))
    print(_table([(c.name, c.family, c.paper, c.year, data_needs(c)) for c in classes],
                 ("model", "family", "paper", "year", "data")))
    return 0


def cmd_datasets(args) -> int:
    from .data import DATASETS, availability, data_root

    rows = [(d.name, d.kind, d.description, availability(d.name, args.data_root)) for d in DATASETS.values()]
    rows.append(("folder:PATH", "image", "any folder of images; labels from sub-folders", "yours"))
    rows.append(("aligned:PATH", "image", "pix2pix layout: PATH/train, test (val) with A|B side by side", "yours"))
    rows.append(("unaligned:PATH", "image", "CycleGAN layout: PATH/trainA, trainB, testA, testB (unpaired)", "yours"))
    rows.append(("captions:PATH", "image", "CUB-200 / Oxford-102 caption layout: text_c10/CLASS/NAME.txt, images/ (or jpg/), "
                 "trainvalclasses.txt / testclasses.txt", "yours"))
    print(_table(rows, ("name", "kind", "what", "here")))
    print("\nsplits: NAME:train, NAME:test, NAME:val (last tenth of train), NAME:train-val; parts: NAME[a:b], "
          "e.g. mnist:test[:8000]")
    print(f"\ndata root: {data_root(args.data_root)} (set GANFORGE_DATA or --data-root to change it)")
    return 0


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    return parse


def cmd_train(args) -> int:
    from .config import parse_sets
    from .training import distributed, train

    flags = {k: v for k, v in {"data": args.data, "batch_size": args.batch_size, "seed": args.seed,
                               "device": args.device, "data_root": args.data_root,
                               "eval_every": args.eval_every}.items() if v is not None}
    if args.download:
        flags["download"] = True
    if args.compile:
        flags["compile"] = True
    if args.skip_bad_images:
        flags["skip_bad_images"] = True
    if args.amp:
        flags["amp"] = args.amp
    if args.tensorboard:
        flags["tensorboard"] = True
    if args.resume and args.model:
        raise ConfigError("give either a model to train or --resume DIR, not both")
    result = train(args.model, out=args.out, resume=args.resume, force=args.force, steps=args.steps,
                   config_file=args.config, sets=parse_sets(args.set), progress=not args.quiet,
                   nproc=args.nproc or 1, **flags)
    out = result["out"]
    if distributed.env_rank() != 0:
        return 0  # rank 0 reports for every process
    print(f"trained to step {result['step']}; run in {out}/")
    if result.get("nan_skipped"):
        print(f"  skipped:     {result['nan_skipped']} updates whose loss was not finite (nan_policy=skip)")
    if result.get("samples"):
        print(f"  samples:     {result['samples']}")
    if result.get("loss_plot"):
        print(f"  loss plot:   {result['loss_plot']}")
    if result.get("tensorboard"):
        print(f"  tensorboard: tensorboard --logdir {result['tensorboard']}")
    print(f"  checkpoint:  {out / 'checkpoints' / 'last.pt'}")
    print(f"  generator:   {out / 'generator.safetensors'}")
    return 0


def cmd_sample(args) -> int:
    import numpy as np

    from .report import save_grid, save_scatter
    from .training import load_run

    model = load_run(args.run, device=args.device)
    _check_sample_options(model, args)
    if args.styles is not None or args.style_from is not None:
        return _translate_styles(model, args)
    if args.input is not None and hasattr(model, "restore"):
        return _restore_files(model, args)
    if args.input is not None and hasattr(model, "reconstruct") and args.direction is None:
        return _reconstruct_files(model, args)
    if args.input is not None or args.direction is not None:
        if not hasattr(model, "translate"):
            raise ConfigError(f"{model.name} draws images from noise; --input is for translation models and models "
                              "with an encoder, --direction for translation models")
        if args.input is None:
            raise ConfigError("--direction needs --input, the images to translate")
        return _translate_files(model, args)
    if hasattr(model, "translate"):
        model.sample(args.n)  # a translator says how to sample it: with --input
    out = Path(args.out) if args.out else Path(args.run) / f"sample_seed{args.seed}.png"
    if out.suffix not in (".png", ".npz"):
        raise ConfigError(f"--out must end in .png or .npz, got {out.name!r}")
    cond, nrow = {}, None
    if args.label is not None:
        if not getattr(model, "takes_label", False):  # base models would ignore it silently
            raise ConfigError(f"{model.name} is not class-conditional, so --label does not apply to it")
        cond["label"] = args.label
    if args.truncation is not None:
        cond["truncation"] = args.truncation
    if args.text is not None:  # text-to-image models: --n samples for each caption, one row per caption
        from .data.captions import check_text

        cond["text"] = check_text(args.text)
        nrow, args.n = (args.n, args.n * len(cond["text"])) if len(cond["text"]) > 1 else (None, args.n)
    if args.mix:
        if args.vary is not None or args.label is not None:
            raise ConfigError("--mix draws its own grid; give it without --vary or --label")
        if not args.out:
            out = Path(args.run) / f"mix_seed{args.seed}.png"
        x, nrow = model.mixing_grid(seed=args.seed, use_ema=not args.no_ema, **cond)
        args.n = len(x)
    elif args.vary is not None:
        if not hasattr(model, "traversal"):
            raise ConfigError(f"{model.name} has no latent codes to vary; --vary is for infogan")
        if args.label is not None:
            raise ConfigError("give --label or --vary, not both")
        if not args.out:
            out = Path(args.run) / f"vary_{args.vary}_seed{args.seed}.png"
        x, nrow = model.traversal(args.vary, seed=args.seed, use_ema=not args.no_ema)
        args.n = len(x)
    else:
        try:
            x = model.sample(args.n, seed=args.seed, use_ema=not args.no_ema, **cond)
        except TypeError as e:
            raise ConfigError(f"{model.name} does not take these sampling options: {e}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        key = "images" if model.spec.kind == "image" else "points"
        np.savez(out, **{key: x.numpy().astype(np.float32)})
    elif model.spec.kind == "points":
        save_scatter(x, None, out, title=f"{model.name}: {args.n} samples")
    else:
        save_grid(x, out, nrow=nrow)
    print(f"wrote {args.n} samples of {model.generator_name(not args.no_ema)} to {out}")
    return 0


# Sampling flags that only some models take: flag -> (the model's sample_options entry, who takes it).
SAMPLE_FLAGS = {"truncation": ("truncation", "--truncation"), "mix": ("mix", "--mix"),
                "styles": ("styles", "--styles"), "style_from": ("styles", "--style-from"),
                "mask": ("mask", "--mask"), "text": ("text", "--text")}


def _check_sample_options(model, args) -> None:
    """One line for a flag the run's model does not take, naming the models that do."""
    from .registry import all_models

    for flag, (option, shown) in SAMPLE_FLAGS.items():
        if getattr(args, flag) in (None, False):
            continue
        if option not in getattr(model, "sample_options", ()):
            takers = sorted(n for n, c in all_models().items() if option in getattr(c, "sample_options", ()))
            raise ConfigError(f"{model.name} does not take {shown}" +
                              (f"; it is for {', '.join(takers)}" if takers else ""))
    if args.style_from is not None and args.input is None:
        raise ConfigError("--style-from needs --input, the images to translate in that style")
    if args.styles is not None and args.input is None:
        raise ConfigError("--styles needs --input, the images to translate")
    if args.styles is not None and args.style_from is not None:
        raise ConfigError("give --styles K (drawn styles) or --style-from IMAGE (an example's style), not both")


def _translate_styles(model, args) -> int:
    """Each input translated in several styles: one PNG per input, the input then its outputs in a row."""
    import torch

    direction = args.direction or "AtoB"
    x, files = _read_inputs(Path(args.input), model.input_channels(direction), model.spec.image_size)
    style = None
    if args.style_from is not None:
        style, _ = _read_inputs(Path(args.style_from), model.spec.channels, model.spec.image_size)
    y = model.translate_styles(x, direction, k=args.styles or 1, style_images=style, use_ema=not args.no_ema,
                               seed=args.seed)  # (N, K, C, H, W)
    src = x.float() / 127.5 - 1.0
    if src.shape[1] != y.shape[2]:  # a grey input beside colour outputs
        src = src.expand(-1, y.shape[2], -1, -1)
    rows = torch.cat([src[:, None], y], 1)  # (N, 1 + K, C, H, W)
    out = Path(args.out) if args.out else Path(args.run) / f"styles_{direction}"
    if out.suffix:
        raise ConfigError(f"--out is a folder for the translated images, got {out.name!r}")
    out.mkdir(parents=True, exist_ok=True)
    from .report import save_grid

    for r, f in zip(rows, files):
        save_grid(r, out / f"{f.stem}.png", nrow=len(r))
    how = f"the style of {args.style_from}" if style is not None else f"{y.shape[1]} drawn styles"
    print(f"translated {len(files)} image{'s' * (len(files) != 1)} {direction} in {how} to {out}/ "
          "(one PNG per input: the input, then its translations)")
    return 0


def _read_inputs(path: Path, channels: int, size: int):
    """The images at ``path`` (a file or a folder of them), as uint8 (N, C, size, size), and their names."""
    import numpy as np
    import torch
    from PIL import Image

    from .data.folder import _read
    from .data.translation import list_images

    if not path.exists():
        raise ConfigError(f"--input {path} does not exist")
    files = list_images(path) if path.is_dir() else [path]
    images = []
    for f in files:
        im = _read(f, "L" if channels == 1 else "RGB")  # one-line DataError for a corrupt file
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(im)
        images.append(torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy()))
    return torch.stack(images), files


def _write_pngs(y, files, out: Path, what: str) -> None:
    from PIL import Image

    from .metrics.classifier import to_uint8

    if out.suffix:
        raise ConfigError(f"--out is a folder for the {what} images, got {out.name!r}")
    out.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(y).permute(0, 2, 3, 1).numpy()
    for a, f in zip(arr, files):
        Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(out / f"{f.stem}.png")


def _translate_files(model, args) -> int:
    direction = args.direction or "AtoB"
    x, files = _read_inputs(Path(args.input), model.input_channels(direction), model.spec.image_size)
    out = Path(args.out) if args.out else Path(args.run) / f"translated_{direction}"
    _write_pngs(model.translate(x, direction, use_ema=not args.no_ema), files, out, "translated")
    print(f"translated {len(files)} image{'s' * (len(files) != 1)} {direction} with "
          f"{model.translator_name(direction, not args.no_ema)} to {out}/")
    return 0


def _reconstruct_files(model, args) -> int:
    x, files = _read_inputs(Path(args.input), model.spec.channels, model.spec.image_size)
    out = Path(args.out) if args.out else Path(args.run) / "reconstructed"
    _write_pngs(model.reconstruct(x, use_ema=not args.no_ema), files, out, "reconstructed")
    print(f"reconstructed {len(files)} image{'s' * (len(files) != 1)} as "
          f"{model.generator_name(not args.no_ema)}({model.encoder_name(not args.no_ema)}(x)) to {out}/")
    return 0


def _restore_files(model, args) -> int:
    """Restorers: each --input image upscaled (srgan, srresnet: at its own size, the network is
    fully convolutional) or its centre / random blocks filled (context-encoder), as PNGs in --out DIR."""
    out = Path(args.out) if args.out else Path(args.run) / "restored"
    if hasattr(model, "upscale"):
        import numpy as np
        import torch

        from .data.folder import _read
        from .data.translation import list_images

        path = Path(args.input)
        if not path.exists():
            raise ConfigError(f"--input {path} does not exist")
        files = list_images(path) if path.is_dir() else [path]
        for f in files:  # one at a time: the images may differ in size
            a = np.asarray(_read(f, "L" if model.spec.channels == 1 else "RGB"))
            x = torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy())[None]
            _write_pngs(model.upscale(x, use_ema=not args.no_ema), [f], out, "upscaled")
        what = f"upscaled {model.cfg['scale']}x"
    else:
        x, files = _read_inputs(Path(args.input), model.spec.channels, model.spec.image_size)
        _write_pngs(model.inpaint(x, mask=args.mask or "centre", seed=args.seed, use_ema=not args.no_ema), files,
                    out, "filled")
        what = f"filled ({args.mask or 'centre'} mask)"
    print(f"{what} {len(files)} image{'s' * (len(files) != 1)} with {model.generator_name(not args.no_ema)} "
          f"to {out}/")
    return 0


def cmd_encode(args) -> int:
    import numpy as np

    from .files import atomic_write_bytes
    from .training import load_run

    model = load_run(args.run, device=args.device)
    if not hasattr(model, "encode"):
        raise ConfigError(f"{model.name} has no encoder; `ganforge encode` is for models with one "
                          "(aae, bigan, ali, vaegan, vae)")
    out = Path(args.out) if args.out else Path(args.run) / "codes.npz"
    if out.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {out.name!r}")
    x, files = _read_inputs(Path(args.input), model.spec.channels, model.spec.image_size)
    z = model.encode(x, use_ema=not args.no_ema)
    out.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez(buf, codes=z.numpy().astype(np.float32), files=np.array([f.name for f in files]))
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote the {z.shape[1]}-dimensional codes of {len(files)} image{'s' * (len(files) != 1)} by "
          f"{model.encoder_name(not args.no_ema)} to {out} (arrays 'codes', 'files')")
    return 0


def cmd_eval(args) -> int:
    from .metrics.evaluate import format_result
    from .run_eval import evaluate_run

    rec = evaluate_run(args.run, metrics=args.metrics, features=args.features, n=args.n, ema=not args.no_ema,
                       seed=args.seed, device=args.device, data_root=args.data_root,
                       inception_weights=args.inception_weights, download=args.download, baseline=args.baseline,
                       progress=not args.quiet, ref=args.ref)
    what = {"real": "real held-out images", "untrained": "the untrained generator"}.get(rec["baseline"]) or \
        f"step {rec['step']}, {rec['net']}"
    feats = f", {rec['features']} features" if "features" in rec else ""
    print(f"{args.run}: {what}, {rec['n']} samples{feats}")
    print(format_result(rec))
    print(f"appended to {Path(args.run) / 'eval.jsonl'}")
    return 0


def cmd_report(args) -> int:
    from .report.html import write_report

    out = Path(args.out) if args.out else (Path(args.runs[0]) / "report.html" if len(args.runs) == 1
                                           else Path("report.html"))
    path = write_report(args.runs, out, title=args.title, max_samples=args.max_samples)
    print(f"wrote {path} ({len(args.runs)} run{'s' * (len(args.runs) != 1)}, "
          f"{path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser)")
    return 0


def cmd_train_text_encoder(args) -> int:
    from .text import train_text_encoder

    cfg = {"te_steps": args.steps} if args.steps else {}
    path, rec = train_text_encoder(args.data, out=args.out, cfg=cfg, seed=args.seed, root=args.data_root,
                                   progress=not args.quiet)
    held = f"; held-out caption->image retrieval {rec['retrieval'] * 100:.1f}% (of 500)" if "retrieval" in rec else ""
    print(f"trained the text encoder on {args.data} ({len(rec['vocab'])} words, {rec['steps']} steps, "
          f"{rec['seconds']:.0f} s, final DS-SJE loss {rec['loss']:.4f}){held}; saved to {path}")
    return 0


def cmd_train_classifier(args) -> int:
    from .metrics.classifier import train_classifier

    r = train_classifier(args.data, out=args.out, root=args.data_root, seed=args.seed, steps=args.steps,
                         progress=not args.quiet)
    print(f"test accuracy {r['test_accuracy'] * 100:.2f}% on {r['n_test']:,} held-out images "
          f"(train {r['train_accuracy'] * 100:.2f}% on {r['n_train']:,}); {r['seconds']:.0f} s")
    print(f"wrote {r['out']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganforge", description="Train, sample and evaluate GANs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="the models ganforge implements")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("datasets", help="the data sets ganforge knows, and which are here")
    s.add_argument("--data-root", help="folder holding downloadable data sets (default: $GANFORGE_DATA)")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("train", help="train a model, or resume a run")
    s.add_argument("model", nargs="?", help="model name (see `ganforge list`)")
    s.add_argument("--data", help="data set name (see `ganforge datasets`) or folder:PATH")
    s.add_argument("--steps", type=_positive(int), help="total generator steps to train to")
    s.add_argument("--batch-size", type=_positive(int))
    s.add_argument("--out", help="run directory (default runs/MODEL-DATA)")
    s.add_argument("--seed", type=int)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"])
    s.add_argument("--config", help="YAML file of settings")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any setting (repeatable)")
    s.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    s.add_argument("--force", action="store_true", help="replace the run already in --out")
    s.add_argument("--data-root", help="folder holding downloadable data sets")
    s.add_argument("--download", action="store_true", help="download the data set if missing")
    s.add_argument("--skip-bad-images", action="store_true",
                   help="folder:PATH data: train on the readable images, leaving out (and naming) the rest")
    s.add_argument("--eval-every", type=int, metavar="N",
                   help="evaluate every N steps, logged in metrics.jsonl (sample count: --set eval_n=...)")
    s.add_argument("--quiet", action="store_true", help="no progress bar (nor, in a log file, progress lines)")
    s.add_argument("--tensorboard", action="store_true",
                   help="also write losses, eval metrics and sample grids for TensorBoard under OUT/tensorboard/")
    s.add_argument("--nproc", type=_positive(int), metavar="N",
                   help="train data-parallel in N local processes, as torchrun would (one per GPU, or CPU processes)")
    s.add_argument("--compile", action="store_true", help="torch.compile the networks (falls back if it fails)")
    s.add_argument("--amp", choices=["off", "bf16", "fp16"], help="mixed precision (fp16 needs CUDA)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", help="run directory")
    s.add_argument("--n", type=_positive(int), default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="FILE.png (a grid) or FILE.npz (array 'images', N x C x H x W in [-1, 1])")
    s.add_argument("--label", type=int, help="class to draw (conditional models)")
    s.add_argument("--vary", metavar="CODE", help="latent code to traverse, e.g. c1 (infogan): a grid with one "
                   "row per fixed noise vector and the code's values across")
    s.add_argument("--input", metavar="IMAGE_OR_FOLDER",
                   help="translation models: images to translate; srgan/srresnet: low-resolution images to upscale; "
                   "context-encoder: images whose centre to fill; models with an encoder: images to reconstruct "
                   "as G(E(x)) (written as PNGs into --out DIR)")
    s.add_argument("--direction", choices=["AtoB", "BtoA"], help="translation models: which way (default AtoB)")
    s.add_argument("--truncation", type=float, metavar="PSI",
                   help="the truncation trick (stylegan: psi towards the mean w; biggan: the resampling threshold)")
    s.add_argument("--mix", action="store_true", help="stylegan: the style-mixing grid (coarse, middle and fine "
                   "styles of one row's images applied to another's)")
    s.add_argument("--styles", type=_positive(int), metavar="K",
                   help="multimodal translators (munit, drit, bicyclegan): K drawn styles per --input image")
    s.add_argument("--style-from", metavar="IMAGE", help="multimodal translators: translate --input in the style "
                   "of this example image")
    s.add_argument("--mask", choices=["centre", "random"], help="context-encoder: fill the centre (default) or "
                   "random blocks of each --input image")
    s.add_argument("--text", metavar="CAPTION_OR_FILE.txt",
                   help="text-to-image models (gan-int-cls, stackgan): a caption, or a .txt file of captions "
                   "(one a line, one grid row each); --n samples per caption")
    s.add_argument("--no-ema", action="store_true", help="use G rather than its EMA copy")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("encode", help="the codes E(x) of images, for models with an encoder (aae, bigan, ali, ...)")
    s.add_argument("run", help="run directory")
    s.add_argument("--input", required=True, metavar="IMAGE_OR_FOLDER", help="an image or a folder of images")
    s.add_argument("--out", help="FILE.npz: arrays 'codes' (N x z) and 'files' (default RUN/codes.npz)")
    s.add_argument("--no-ema", action="store_true", help="use E rather than its EMA copy")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s.set_defaults(fn=cmd_encode)

    s = sub.add_parser("eval", help="measure a run: Frechet distance, KID, precision/recall, classes, modes")
    s.add_argument("run", help="run directory")
    s.add_argument("--metrics", help="comma-separated: fd,kid,is,pr,dc,classes,modes (default: by data kind)")
    s.add_argument("--features", help="digits or inception (default: digits for mnist/digits, else inception)")
    s.add_argument("--n", type=_positive(int), help="samples to draw (default 10000; 2500 for 2-D data)")
    s.add_argument("--no-ema", action="store_true", help="measure G rather than its EMA copy (default: the EMA "
                   "copy when the run has one, as during training and in `ganforge sample`)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--baseline", choices=["real", "untrained"],
                   help="measure real held-out images (the floor) or the untrained G (the ceiling) instead")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s.add_argument("--data-root", help="folder holding downloadable data sets")
    s.add_argument("--inception-weights", metavar="FILE",
                   help="Inception-v3 weights (default: $GANFORGE_INCEPTION_WEIGHTS)")
    s.add_argument("--download", action="store_true", help="allow downloading the Inception weights")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--ref", metavar="DATA", help="measure against DATA's images (at the run's image size) instead "
                   "of the run's training data, e.g. folder:PATH/facades/testA for two runs on different layouts")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("report", help="one self-contained HTML page of runs: config, curves, samples, evals")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run directories (several: a comparison too)")
    s.add_argument("--out", help="the .html file (default RUN/report.html for one run, else report.html)")
    s.add_argument("--title", help="the page's title")
    s.add_argument("--max-samples", type=_positive(int), default=40, metavar="N",
                   help="sample grids per run at most, evenly spread over training, first and last kept (40)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("train-classifier", help="train the built-in digit classifier behind --features digits")
    s.add_argument("--data", default="mnist", choices=["mnist", "digits", "mnist-edges", "digits-edges"])
    s.add_argument("--out", help="weights file (default: the package's own, ganforge/assets/)")
    s.add_argument("--steps", type=_positive(int), help="training steps (default: 2000 mnist, 1500 digits)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-root", help="folder holding MNIST (default: $GANFORGE_DATA)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train_classifier)

    s = sub.add_parser("train-text-encoder", help="train the text encoder of gan-int-cls and stackgan (joint "
                       "image-text embedding) on a captioned data set, into the cache they read")
    s.add_argument("--data", default="mnist-captions", help="mnist-captions, digits-captions or captions:PATH")
    s.add_argument("--out", help="encoder file (default: the cache the text models look in)")
    s.add_argument("--steps", type=_positive(int), help="training steps (default 1500)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-root", help="folder holding MNIST (default: $GANFORGE_DATA)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(fn=cmd_train_text_encoder)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .training import Interrupted

    try:
        return args.fn(args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        if e.main:  # under data parallelism every process stops here; one reports
            print(f"ganforge: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("ganforge: interrupted; the last checkpoint on disk is kept", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
