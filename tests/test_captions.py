"""Captioned data (data/captions.py) and the text encoder (text.py)."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import load_data, spec_of
from ganforge.data.captions import (DIGIT_WORDS, SLANT_WORDS, THICK_WORDS, Vocabulary,
                                    grammar_words, measure, slant_level, thickness_level, tokenize)
from ganforge.data.translation import COLOR_NAMES, uncolor
from ganforge.errors import ConfigError, DataError
from ganforge.text import TextEncoder, joint_embedding_loss, pair_classes


@pytest.fixture(scope="module")
def captioned():
    return load_data("digits-captions:test")


def test_vocabulary_round_trip_and_errors():
    v = Vocabulary(grammar_words())
    text = "A thick, right-leaning seven in red on blue!"
    ids = v.encode(text)
    assert v.decode(ids) == " ".join(tokenize(text)) == "a thick right-leaning seven in red on blue"
    assert Vocabulary(v.words) == v and len(set(ids)) == len(set(tokenize(text)))
    with pytest.raises(ConfigError, match="unknown word 'purple'") as e:
        v.encode("a purple seven")
    assert "\n" not in str(e.value)
    for empty in ("", "  ,;. "):
        with pytest.raises(ConfigError, match="no words"):
            v.encode(empty)
    batch = v.encode_batch(["a red one on blue", "a thin green two on a black background"], length=32)
    assert batch.shape == (2, 32) and v.decode(batch[0]) == "a red one on blue" and (batch[0, 5:] == 0).all()


def test_measurements_order_synthetic_strokes():
    """Thickness, slant and height measured on drawn bars: wider, sheared and shorter bars read so."""
    def bar(width, shear=0.0, height=20):
        a = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
        top = 14 - height // 2
        for r in range(top, top + height):
            c = int(round(14 + shear * (14 - r) - width / 2))
            a[0, 0, r, c:c + width] = 255
        return a
    m = {k: measure(torch.cat([bar(1), bar(2), bar(4)]))[k] for k in ("thick", "height")}
    assert m["thick"][0] < m["thick"][1] < m["thick"][2]
    s = measure(torch.cat([bar(2, -0.4), bar(2, 0.0), bar(2, 0.4)]))["slant"]
    assert s[0] < -0.3 and abs(s[1]) < 0.05 and s[2] > 0.3
    assert slant_level(s).tolist() == [-1, 0, 1]
    assert measure(bar(2, height=10))["height"][0] == 10
    assert thickness_level(torch.tensor([1.0, 2.0, 3.0])).tolist() == [-1, 0, 1]


def test_captions_agree_with_the_images_they_describe(captioned):
    """Every word of every caption checks out on the coloured image itself: the digit word is the
    label, the colour words are the ink and paper colours, thickness/slant words match what is
    measured on the uncoloured image."""
    g = captioned.groups["data"]
    x = captioned.x
    m = measure(uncolor(x))
    thick, slant = thickness_level(m["thick"]), slant_level(m["slant"])
    palette = dict(zip(COLOR_NAMES, torch.tensor([[0, 0, 0], [255] * 3, [255, 0, 0], [0, 255, 0], [0, 0, 255],
                                                  [255, 255, 0], [0, 255, 255], [255, 0, 255]])))
    checked = 0
    for i in range(0, len(x), 7):
        corner = x[i, :, 0, 0]
        ink = x[i].flatten(1)[:, uncolor(x[i:i + 1]).flatten() == 255]
        for cap in captioned.captions[i]:
            words = tokenize(cap)
            digits = [w for w in words if w in DIGIT_WORDS]
            assert digits == [DIGIT_WORDS[int(g["y"][i])]], cap
            colours = [w for w in words if w in COLOR_NAMES]
            assert len(colours) == 2, cap
            # sentence forms say "fg on bg", "fg ink on bg", or "a BG image with a ... FG digit"
            fg, bg = (colours[1], colours[0]) if "image" in words else colours
            assert torch.equal(palette[bg], corner.long()), (cap, corner)
            if ink.shape[1]:
                assert torch.equal(palette[fg], ink[:, 0].long()), cap
            assert (fg, bg) == (COLOR_NAMES[g["fg"][i]], COLOR_NAMES[g["bg"][i]])
            for level, word in THICK_WORDS.items():
                if word in words:
                    assert thick[i] == level, (cap, float(m["thick"][i]))
            for level, word in SLANT_WORDS.items():
                if word in words:
                    assert slant[i] == level, (cap, float(m["slant"][i]))
            checked += 1
    assert checked >= 250
    # the fields kept for measuring are those of the grey digit
    assert torch.allclose(g["slant"], m["slant"], atol=0.02)


def test_captions_are_fixed_per_image_whatever_part_is_loaded(captioned):
    part = load_data("digits-captions:test[5:12]")
    assert part.captions == captioned.captions[5:12]
    assert torch.equal(part.groups["data"]["tokens"], captioned.groups["data"]["tokens"][5:12])
    assert spec_of("digits-captions", raw=part).data_kind == "image"
    assert part.groups["data"]["tokens"].shape[:2] == (7, 5)


def _write_layout(root, with_embeddings=True):
    """A tiny CUB-style layout: two train classes, one test class, two images each."""
    classes = {"001.Albatross": "train", "002.Auklet": "train", "003.Blackbird": "test"}
    for cls in classes:
        (root / "images" / cls).mkdir(parents=True)
        (root / "text_c10" / cls).mkdir(parents=True)
        for k in range(2):
            rgb = np.full((20, 30, 3), 40 * k + 10 * len(cls), dtype=np.uint8)
            Image.fromarray(rgb).save(root / "images" / cls / f"img_{k}.jpg")
            (root / "text_c10" / cls / f"img_{k}.txt").write_text(
                f"this bird is {'red' if k else 'blue'} with a short beak.\nA small {cls[4:].lower()} bird.\n")
    (root / "trainvalclasses.txt").write_text("001.Albatross\n002.Auklet\n")
    (root / "testclasses.txt").write_text("003.Blackbird\n")
    if with_embeddings:
        for split, names in (("train", ["001.Albatross/img_0", "001.Albatross/img_1", "002.Auklet/img_0",
                                        "002.Auklet/img_1"]), ("test", ["003.Blackbird/img_1", "003.Blackbird/img_0"])):
            (root / split).mkdir()
            emb = np.arange(len(names) * 2 * 4, dtype=np.float32).reshape(len(names), 2, 4)
            with open(root / split / "char-CNN-RNN-embeddings.pickle", "wb") as f:
                pickle.dump(emb, f)
            with open(root / split / "filenames.pickle", "wb") as f:
                pickle.dump(names, f)


def test_caption_folder_layout(tmp_path):
    _write_layout(tmp_path)
    train = load_data(f"captions:{tmp_path}", image_size=16)
    assert train.x.shape == (4, 3, 16, 16) and train.y.tolist() == [0, 0, 1, 1]
    g = train.groups["data"]
    assert train.vocab.decode(g["tokens"][1, 0]) == "this bird is red with a short beak"
    assert train.vocab.decode(g["tokens"][2, 1]) == "a small auklet bird"
    assert g["emb"].shape == (4, 2, 4)
    test = load_data(f"captions:{tmp_path}:test", image_size=16)
    assert test.y.tolist() == [0, 0] and len(test.captions) == 2
    # "blackbird" is not a training word: the unknown index, the vocabulary stays the training split's
    assert test.vocab == train.vocab and 1 in test.groups["data"]["tokens"][0, 1].tolist()
    # the embeddings follow filenames.pickle's order, not the files'
    assert torch.equal(test.groups["data"]["emb"][0], torch.arange(8, 16, dtype=torch.float32).view(2, 4))


def test_caption_folder_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"captions:{tmp_path / 'nowhere'}")
    _write_layout(tmp_path, with_embeddings=False)
    (tmp_path / "images" / "002.Auklet" / "img_1.jpg").unlink()
    with pytest.raises(DataError, match="no image for") as e:
        load_data(f"captions:{tmp_path}")
    assert "\n" not in str(e.value)
    (tmp_path / "testclasses.txt").unlink()
    with pytest.raises(DataError, match="testclasses.txt"):
        load_data(f"captions:{tmp_path}:test")


def test_text_encoder_ignores_padding_and_loss_counts_other_classes():
    torch.manual_seed(0)
    v = Vocabulary(grammar_words())
    enc = TextEncoder(len(v), 16, 16, 8).eval()
    short = v.encode_batch(["a red one on blue", "a thick green two on black"])
    long = v.encode_batch(["a red one on blue", "a thick green two on black"], length=32)
    assert torch.allclose(enc(short), enc(long), atol=1e-6)
    # Reed's DS-SJE: only pairs of other classes count, and a margin of 1 makes the loss 0
    t = torch.eye(3) * 2
    assert joint_embedding_loss(t, t, torch.tensor([0, 1, 2])) == 0
    close = torch.tensor([[3.0, 2.5, 0.0], [2.5, 3.0, 0.0], [0.0, 0.0, 3.0]])  # items 0 and 1 within the margin
    assert joint_embedding_loss(close, torch.eye(3), torch.tensor([0, 1, 2])) > 0
    assert joint_embedding_loss(close, torch.eye(3), torch.tensor([0, 0, 2])) == 0  # same class: no mismatch


def test_pair_classes_separate_what_captions_say(captioned):
    g = captioned.groups["data"]
    cls = pair_classes(g)
    same = cls[:, None] == cls[None, :]
    for k in ("y", "fg", "bg"):
        assert (g[k][:, None] == g[k][None, :])[same].all()
