"""The built-in digit classifier: shipped weights are small, load safely, and are accurate on held-out real data."""
import pytest
import torch
from safetensors.torch import load_file

from ganforge.data import load_data
from ganforge.errors import GanforgeError
from ganforge.metrics.classifier import ASSETS, WEIGHTS, load_classifier, predict, prepare, train_classifier


@pytest.mark.parametrize("data", sorted(WEIGHTS))
def test_shipped_weights_are_small_safetensors_with_their_record(data):
    path = ASSETS / WEIGHTS[data]
    assert path.is_file(), f"missing {path}; make it with `ganforge train-classifier --data {data}`"
    assert path.stat().st_size < 2 * 1024 * 1024
    assert all(torch.is_tensor(v) for v in load_file(str(path)).values())
    _, meta = load_classifier(data)
    assert meta["data"] == data and int(meta["n_test"]) > 0


def test_digits_classifier_is_accurate_on_its_held_out_fifth():
    net, meta = load_classifier("digits")
    raw = load_data("digits")
    test = torch.arange(len(raw)) % 5 == 4  # the split train_classifier holds out
    acc = float((predict(net, raw.x[test]).argmax(1) == raw.y[test]).float().mean())
    assert acc >= 0.97, acc
    # The accuracy recorded in the file is the one these weights really have.
    assert acc == pytest.approx(float(meta["test_accuracy"]), abs=1e-4)


def test_mnist_classifier_meets_the_target_on_the_last_2000_test_images(shared_data):
    net, meta = load_classifier("mnist")
    raw = load_data("mnist", root=shared_data, split="test")
    x, y = raw.x[8000:], raw.y[8000:]
    acc = float((predict(net, x).argmax(1) == y).float().mean())
    assert acc >= 0.985, acc
    if int(meta["n_train"]) == 8000:  # trained here, on the first 8,000: the record must match
        assert acc == pytest.approx(float(meta["test_accuracy"]), abs=1e-4)


def test_edge_map_classifiers_read_the_edge_domain_and_the_digit_ones_do_not(shared_data):
    """mnist-edges / digits-edges: trained on the edge maps (the B domain of the derived translation
    sets), so a translator's edge-map outputs can be classified; the digit weights cannot read them."""
    from ganforge.data.translation import edges

    raw = load_data("mnist", root=shared_data, split="test")
    e = edges(raw.x)
    acc = {w: float((predict(load_classifier(w)[0], e).argmax(1) == raw.y).float().mean())
           for w in ("mnist-edges", "mnist")}
    assert acc["mnist-edges"] >= 0.98 and acc["mnist-edges"] > acc["mnist"] + 0.05, acc
    assert acc["mnist-edges"] == pytest.approx(float(load_classifier("mnist-edges")[1]["test_accuracy"]), abs=1e-4)
    digits = load_data("digits")
    test = torch.arange(len(digits)) % 5 == 4
    net, meta = load_classifier("digits-edges")
    got = float((predict(net, edges(digits.x[test])).argmax(1) == digits.y[test]).float().mean())
    assert got == pytest.approx(float(meta["test_accuracy"]), abs=1e-4)


def test_prepare_quantises_greys_and_resizes_like_uint8_input():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (3, 1, 32, 32), generator=g, dtype=torch.uint8)
    as_float = u8.float() / 127.5 - 1
    a, b = prepare(u8), prepare(as_float)
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    rgb = u8.expand(-1, 3, -1, -1)
    assert torch.equal(prepare(rgb), a)  # grey in RGB is the same grey
    with pytest.raises(GanforgeError):
        prepare(torch.zeros(2, 2, 28, 28))


def test_train_classifier_is_reproducible_and_seeded(tmp_path):
    runs = [train_classifier("digits", out=tmp_path / f"{s}-{i}.safetensors", seed=s, steps=3, progress=False,
                             log=lambda *_: None) for s, i in ((0, 0), (0, 1), (1, 0))]
    # Compared as tensors and metadata: safetensors writes its metadata keys in no fixed order.
    (w0, m0), (w1, m1), (w2, _) = [(load_file(str(r["out"])), load_classifier(r["out"])[1]) for r in runs]
    assert m0 == m1 and w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert not all(torch.equal(w0[k], w2[k]) for k in w0)


def test_bad_weights_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(GanforgeError, match="cannot load classifier weights"):
        load_classifier(bad)
