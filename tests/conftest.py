import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GANFORGE_DATA") or REPO.parent / "shared" / "datasets")


@pytest.fixture
def shared_data():
    """The real data sets of ../shared/datasets (or $GANFORGE_DATA); skips where absent."""
    if not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found under {SHARED}")
    return SHARED


# Small networks keep engine tests fast; the mechanisms under test do not depend on width.
TINY_DCGAN = {"g_width": 8, "d_width": 8, "z_dim": 16}
TINY_GAN = {"g_hidden": 32, "d_hidden": 16, "z_dim": 8}
QUIET = {"log_every": 2, "sample_every": 0, "ckpt_every": 0}


def make_trainer(model, data, tmp_path, **sets):
    """A Trainer for ``model`` on ``data`` on the CPU, logging every step, without samples or checkpoints."""
    import ganforge
    from ganforge import config as C
    from ganforge.training.engine import Trainer

    cls = ganforge.registry.get_model_class(model)
    cfg = C.resolve(cls.defaults, {"model": model, "data": data, "device": "cpu", "log_every": 1,
                                   "sample_every": 0, "ckpt_every": 0}, sets)
    return Trainer(cfg, tmp_path, progress=False)


def random_pair(n=2, ca=1, cb=1, size=28, seed=0):
    """A batch of two image fields, A with ``ca`` channels and B with ``cb``, uniform in [-1, 1]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, ca, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, cb, size, size, generator=g) * 2 - 1}


def assert_same_checkpoint(a, b, *also):
    """Two loaded checkpoints hold the same step, model state and optimizer state, bit for bit (and
    equal ``also`` entries, e.g. "loader", "grown"): what an exact resume must give."""
    import torch

    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        va, vb = a["model"][k], b["model"][k]
        assert (torch.equal(va, vb) if torch.is_tensor(va) else repr(va) == repr(vb)), f"model {k} differs"
    for name in a["optimizers"]:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k, v in sa[i].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb[i][k])), f"optimizer {name} {k} differs"
    for key in also:
        assert repr(a[key]) == repr(b[key]), f"{key} differs"
