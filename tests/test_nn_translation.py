"""The image-to-image translation blocks (pix2pix, Isola et al. 2017; CycleGAN, Zhu et al. 2017):
shapes, the U-Net's skips and dropout, residual blocks, the PatchGAN's receptive field (computed and
measured through gradients), norms, inits and the image pool. Tiny widths: the mechanisms do not
depend on them."""
import io

import pytest
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.nn import (ImagePool, PatchDiscriminator, ResidualBlock, ResnetGenerator, UNetGenerator, dcgan_init,
                         init_weights, norm_layer, receptive_field)


def raises_one_line(match, fn, *args, **kw):
    with pytest.raises(ConfigError, match=match) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value)


# -- norms and inits ----------------------------------------------------------------------

def test_norm_layer_kinds():
    assert isinstance(norm_layer("batch", 4), nn.BatchNorm2d)
    inst = norm_layer("instance", 4)
    assert isinstance(inst, nn.InstanceNorm2d) and not inst.affine and not inst.track_running_stats
    x = torch.randn(2, 4, 8, 8) * 3 + 5
    for mode in (True, False):  # each image normalised by itself, in training and at test time
        y = inst.train(mode)(x)
        assert torch.allclose(y.mean((2, 3)), torch.zeros(2, 4), atol=1e-5)
        assert torch.allclose(y.var((2, 3), unbiased=False), torch.ones(2, 4), atol=1e-3)
    assert torch.equal(norm_layer("none", 4)(x), x)
    raises_one_line("unknown norm 'instanse'.*did you mean instance", norm_layer, "instanse", 4)


@pytest.mark.parametrize("gain", [0.02, 0.05])
def test_init_kinds_give_their_weight_scales(gain):
    def fresh():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(32, 64, 4), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 32, 4),
                             nn.Linear(256, 128))

    fan_in, fan_out = 32 * 16, 64 * 16
    expect = {"normal": gain, "xavier": gain * (2 / (fan_in + fan_out)) ** 0.5, "kaiming": (2 / fan_in) ** 0.5}
    for kind, std in expect.items():
        net = init_weights(fresh(), kind, gain)
        assert net[0].weight.std().item() == pytest.approx(std, rel=0.05), kind
        assert all(torch.all(m.bias == 0) for m in (net[0], net[2], net[3]))
        assert net[1].weight.mean().item() == pytest.approx(1.0, abs=3 * gain / 8)  # 64 scales
        assert net[1].weight.std().item() == pytest.approx(gain, rel=0.3)
    w = init_weights(fresh(), "orthogonal", gain)[0].weight.flatten(1)  # 64 rows of 512: orthogonal rows
    assert torch.allclose(w @ w.T, gain ** 2 * torch.eye(64), atol=1e-6 * gain ** 2 * 100)
    raises_one_line("unknown init 'xavir'", init_weights, fresh(), "xavir")


def test_dcgan_init_is_init_weights_normal():
    def fresh():
        torch.manual_seed(3)
        net = nn.Sequential(nn.Conv2d(3, 8, 4), nn.BatchNorm2d(8), nn.InstanceNorm2d(8, affine=True), nn.Linear(8, 4))
        return net

    a, b = fresh(), fresh()
    torch.manual_seed(4)
    dcgan_init(a)
    torch.manual_seed(4)
    init_weights(b)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(fresh()[0].weight, a[0].weight)  # it did draw new weights


# -- U-Net ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,n_down", [(32, 5), (64, 6), (128, 7), (256, 8)])
def test_unet_downsamples_to_one_pixel_and_keeps_the_shape(size, n_down):
    g = UNetGenerator(3, 2, size, ngf=4).eval()
    seen = []
    g.encoder[-1].register_forward_hook(lambda m, i, o: seen.append(o.shape[-2:]))
    y = g(torch.randn(2, 3, size, size))
    assert y.shape == (2, 2, size, size) and g.n_down == n_down and seen == [(1, 1)]
    assert y.abs().max() <= 1  # tanh
    assert UNetGenerator(3, 2, size, ngf=4, max_down=4).n_down == 4


def test_unet_layer_plan_is_the_papers():
    g = UNetGenerator(3, 3, 256, ngf=2)  # the paper's C64-...-C512 with 64 -> 2
    enc = [l[0] for l in g.encoder]
    assert [c.out_channels for c in enc] == [2, 4, 8, 16, 16, 16, 16, 16]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in enc)
    # No norm on the first encoder layer (nor on the 1x1 bottleneck); on all the others.
    assert [any(isinstance(m, nn.BatchNorm2d) for m in l) for l in g.encoder] == [False] + [True] * 6 + [False]
    assert all(m.negative_slope == 0.2 for l in g.encoder[:-1] for m in l if isinstance(m, nn.LeakyReLU))
    # Decoder inputs count the skipped channels: CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128 / 32.
    dec = [l[0] for l in g.decoder] + [g.out[0]]
    assert [c.in_channels for c in dec] == [16, 32, 32, 32, 32, 16, 8, 4]
    assert [sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in l) for l in g.decoder] == [1, 1, 1, 0, 0, 0, 0]
    assert isinstance(g.out[-1], nn.Tanh)


def test_unet_bad_arguments_are_one_line_config_errors():
    for size in (4, 7):
        raises_one_line("image size >= 8", UNetGenerator, 3, 3, size)
    raises_one_line("max_down", UNetGenerator, 3, 3, 64, max_down=1)
    raises_one_line("unknown norm", UNetGenerator, 3, 3, 64, norm="group")


def _zero_bottleneck(g):
    return g.encoder[-1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))


@pytest.mark.parametrize("skips", [True, False])
def test_unet_skips_carry_fine_detail_past_the_bottleneck(skips):
    torch.manual_seed(0)
    g = UNetGenerator(1, 1, 32, ngf=4, skips=skips).eval()
    x = torch.randn(1, 1, 32, 32)
    x2 = x.clone()
    x2[0, 0, 20, 11] += 1.0  # one pixel
    # Without zeroing, both variants see the change (so the test below is not vacuous).
    assert not torch.equal(g(x), g(x2))
    handle = _zero_bottleneck(g)
    diff = (g(x) - g(x2)).abs()[0, 0]
    if skips:
        # Through the first skip the change reaches the output right around that pixel.
        assert diff.max() > 0 and diff[16:25, 7:16].sum() > 0.9 * diff.sum()
    else:
        assert diff.max() == 0  # everything had to pass the (zeroed) bottleneck
    handle.remove()


def test_unet_dropout_is_noise_in_training_only():
    x = torch.randn(2, 3, 32, 32)
    for dropout in (0.5, 0.0):
        torch.manual_seed(0)
        g = UNetGenerator(3, 3, 32, ngf=4, dropout=dropout)
        g.train()
        differ = not torch.equal(g(x), g(x))
        assert differ == (dropout > 0)
        g.eval()
        assert torch.equal(g(x), g(x))


# -- ResNet generator ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_resnet_generator_shapes_and_plan(size):
    g = ResnetGenerator(3, 2, ngf=4, n_blocks=2)
    y = g(torch.randn(1, 3, size, size))
    assert y.shape == (1, 2, size, size) and y.abs().max() <= 1
    assert sum(isinstance(m, ResidualBlock) for m in g.net) == 2
    down = [m for m in g.net if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    up = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert len(down) == 2 and len(up) == 2 and all(m.stride == (2, 2) for m in up)
    ends = [m for m in g.net if isinstance(m, nn.Conv2d) and m.kernel_size == (7, 7)]
    assert [m.padding_mode for m in ends] == ["reflect", "reflect"]
    assert isinstance(g.net[1], nn.InstanceNorm2d)


def test_resnet_generator_bad_arguments():
    raises_one_line("multiples of 4", ResnetGenerator(3, 3, ngf=4, n_blocks=1), torch.randn(1, 3, 30, 30))
    raises_one_line("n_blocks", ResnetGenerator, 3, 3, n_blocks=-1)
    raises_one_line("padding", ResidualBlock, 8, padding="circular")


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_residual_block_is_identity_plus_residual(norm):
    torch.manual_seed(0)
    block = ResidualBlock(8, norm=norm).eval()
    x = torch.randn(2, 8, 16, 16)
    assert torch.allclose(block(x), x + block.residual(x))
    assert not torch.allclose(block(x), x, atol=1e-3)
    last = [m for m in block.residual if isinstance(m, nn.Conv2d)][-1]
    assert last.padding_mode == "reflect"
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    assert torch.equal(block(x), x)


# -- PatchGAN ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64, 128])
def test_patch_discriminator_gives_a_map_of_logits(size):
    d = PatchDiscriminator(6, ndf=4)
    out = d(torch.randn(2, 6, size, size))
    assert out.shape == (2, 1, size // 8 - 2, size // 8 - 2)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1] and all(c.kernel_size == (4, 4) for c in convs)
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 1]
    assert not isinstance(d.net[1], nn.BatchNorm2d)  # no norm on C64
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.net) == 3


def test_patch_receptive_field_computed():
    assert receptive_field(3) == 70 and PatchDiscriminator(3, ndf=4).receptive_field == 70
    assert [receptive_field(n) for n in (1, 2, 4)] == [16, 34, 142]


@pytest.mark.parametrize("n_layers,size", [(1, 48), (2, 64), (3, 128)])
def test_patch_receptive_field_measured_by_gradients(n_layers, size):
    torch.manual_seed(0)
    d = PatchDiscriminator(3, ndf=4, n_layers=n_layers).eval()  # eval: batch norm is then per pixel
    x = torch.randn(1, 3, size, size, requires_grad=True)
    out = d(x)
    i = out.shape[-1] // 2  # an interior logit
    out[0, 0, i, i].backward()
    seen = x.grad[0].abs().sum(0) > 0
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1  # not clipped
    side = receptive_field(n_layers)
    assert len(rows) == len(cols) == side
    assert seen.sum() == side * side  # the whole square


def test_patch_discriminator_bad_arguments():
    raises_one_line("n_layers >= 1", PatchDiscriminator, 3, n_layers=0)
    raises_one_line("at least 24x24", PatchDiscriminator(3, ndf=4), torch.randn(1, 3, 16, 16))


# -- image pool ----------------------------------------------------------------------------------

def ids(start, n):
    """Images (n, 1, 2, 2) whose pixels all hold their id."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def test_image_pool_fills_then_returns_the_images_themselves():
    pool = ImagePool(5, seed=0)
    x = ids(0, 3).requires_grad_()
    out = pool.query(x)
    assert torch.equal(out, x) and not out.requires_grad
    assert torch.equal(pool.query(ids(3, 2)), ids(3, 2))  # now exactly full
    assert pool.count == 5 and torch.equal(pool.images, ids(0, 5))


def test_image_pool_size_zero_returns_the_input():
    pool = ImagePool(0)
    x = ids(0, 4)
    assert torch.equal(pool.query(x), x) and pool.images.numel() == 0
    raises_one_line("pool size", ImagePool, -1)


def test_image_pool_swaps_half_for_older_images():
    pool = ImagePool(10, seed=0)
    pool.query(ids(0, 10))
    n = 2000
    out = torch.cat([pool.query(ids(10 + k, 4)) for k in range(0, n, 4)])[:, 0, 0, 0]
    new = torch.arange(10, 10 + n, dtype=torch.float32)
    swapped = out != new
    assert 0.45 < swapped.float().mean() < 0.55
    assert torch.all(out[swapped] < new[swapped])  # a swap gives an older image
    # Nothing lost or duplicated: what came out and what is held are all the images, once each.
    everything = torch.cat([out, pool.images[:, 0, 0, 0]]).long()
    assert sorted(everything.tolist()) == list(range(n + 10))


def test_image_pool_is_deterministic_given_a_seed_or_generator():
    def run(pool):
        return torch.cat([pool.query(ids(4 * k, 4)) for k in range(20)])

    a, b = run(ImagePool(6, seed=1)), run(ImagePool(6, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(a, b)
    assert not torch.equal(a, run(ImagePool(6, seed=2)))
    torch.manual_seed(7)
    c = run(ImagePool(6))
    torch.manual_seed(7)
    assert torch.equal(c, run(ImagePool(6)))  # seeded from torch's RNG


def test_image_pool_state_round_trips_through_a_weights_only_checkpoint():
    model = nn.ModuleDict({"pool": ImagePool(6, seed=1), "d": nn.Linear(2, 2)})
    for k in range(5):
        model["pool"].query(ids(4 * k, 4))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert {"pool.images", "pool._extra_state"} <= set(model.state_dict())
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = nn.ModuleDict({"pool": ImagePool(6, seed=99), "d": nn.Linear(2, 2)})  # empty, other seed
    fresh.load_state_dict(state)
    assert fresh["pool"].count == 6 and torch.equal(fresh["pool"].images, model["pool"].images)
    for k in range(5, 15):
        assert torch.equal(fresh["pool"].query(ids(4 * k, 4)), model["pool"].query(ids(4 * k, 4)))


@pytest.mark.parametrize("size,side", [(28, 32), (48, 64), (100, 128)])
def test_unet_pads_other_sizes_to_a_power_of_two_and_crops_back(size, side):
    torch.manual_seed(0)
    g = UNetGenerator(1, 1, size, ngf=4, dropout=0.0).eval()
    assert g.side == side and g.n_down == side.bit_length() - 1
    x = torch.rand(2, 1, size, size) * 2 - 1
    y = g(x)
    assert y.shape == (2, 1, size, size)
    # the same as running the power-of-two net on the border-replicated image and cropping the middle
    lo = (side - size) // 2
    padded = torch.nn.functional.pad(x, (lo, side - size - lo) * 2, mode="replicate")
    assert torch.equal(y, g(padded)[..., lo:lo + size, lo:lo + size])
