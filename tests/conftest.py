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
