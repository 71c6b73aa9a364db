"""Measure BiGAN / ALI encoders on real MNIST: the feature-learning and reconstruction targets.

    python benchmarks/bigan.py --runs runs/bigan-mnist runs/ali-mnist --figure docs/img/bigan-ali-recon.png

For each run (trained with ``ganforge train``; the commands are in docs/encoders.md):

- 1-NN accuracy of the codes E(x) of the 10,000 test images (``mnist:test``) against the codes of
  ``--n-reference`` training images (default: all 60,000), by cosine and by
  Euclidean, for the trained encoder and for the same architecture as initialised (the run's
  seed, untrained: the random-encoder baseline);
- the built-in digit classifier's accuracy on the reconstructions G(E(x)) of the test images
  against their labels, and their mean L1 error;
- once, the same 1-NN accuracy on raw pixels (784-d, in [-1, 1]).

``--figure`` writes a grid: rows of test images, then each run's reconstructions of them.
Everything runs on the CPU; ``--threads`` (default 1) sets torch's threads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def measure(model, xq, yq, xr, yr, net) -> dict:
    from ganforge.metrics.classifier import predict
    from ganforge.metrics.encoding import knn_accuracy, label_preservation
    from ganforge.metrics.paired import l1

    t0 = time.time()
    cq, cr = model.encode(xq), model.encode(xr)
    out = {m: knn_accuracy(cq, yq, cr, yr, m) for m in ("cosine", "euclidean")}
    recon = model.reconstruct(xq)
    out.update(recon_label_preservation=label_preservation(predict(net, recon), yq), recon_l1=l1(recon, xq),
               seconds=round(time.time() - t0, 1))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run directories of bigan / ali (or any encoder model)")
    p.add_argument("--n-reference", type=int, default=60_000, help="training images whose codes are the 1-NN reference")
    p.add_argument("--no-pixels", action="store_true", help="skip the raw-pixel baseline")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figure", help="PNG: test images and each run's reconstructions of them")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ganforge.data import load_data
    from ganforge.metrics.classifier import load_classifier
    from ganforge.metrics.encoding import knn_accuracy
    from ganforge.run_eval import _untrained
    from ganforge.training import load_run

    test, train = load_data("mnist:test"), load_data("mnist:train")
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(0))[:args.n_reference].sort().values
    xr, yr = train.x[pick], train.y[pick]
    net, _ = load_classifier("mnist")
    print(f"queries: the {len(test.x):,} images of mnist:test; reference: {len(xr):,} images of mnist:train",
          flush=True)
    results = {"n_query": len(test.x), "n_reference": len(xr)}
    if not args.no_pixels:
        t0 = time.time()
        flat = lambda x: x.float().div(127.5).sub(1).flatten(1)  # noqa: E731
        results["pixels"] = {m: knn_accuracy(flat(test.x), test.y, flat(xr), yr, m) for m in ("cosine", "euclidean")}
        results["pixels"]["seconds"] = round(time.time() - t0, 1)
        print("pixels", json.dumps(results["pixels"]), flush=True)
    rows = [test.x[:16]]
    for run in args.runs:
        model = load_run(run, device="cpu")
        name = f"{model.name}@{model.step}"
        results[name] = measure(model, test.x, test.y, xr, yr, net)
        print(name, json.dumps(results[name]), flush=True)
        results[f"{model.name}-untrained"] = measure(_untrained(Path(run), torch.device("cpu")), test.x, test.y, xr,
                                                     yr, net)
        print(f"{model.name}-untrained", json.dumps(results[f"{model.name}-untrained"]), flush=True)
        rows.append(model.reconstruct(test.x[:16]))
    if args.figure:
        from ganforge.report import save_grid

        save_grid(torch.cat([r.float() / 127.5 - 1 if r.dtype == torch.uint8 else r for r in rows]), args.figure,
                  nrow=16)
        print(f"wrote {args.figure}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
