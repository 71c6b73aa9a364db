"""The differentiable random affine warp (ganforge.nn.augment) that InfoGAN's c1_invariance uses."""
import pytest
import torch

from ganforge.nn.augment import MAX_ROTATE, MAX_SHIFT, random_affine

CENTRE = torch.full((1, 6), 0.5)  # u = 0.5 draws 0 for every parameter


def test_zero_draws_or_zero_strength_leave_images_unchanged():
    x = torch.rand(3, 2, 20, 20)
    assert torch.allclose(random_affine(x, CENTRE.expand(3, 6)), x, atol=1e-5)
    assert torch.allclose(random_affine(x, torch.rand(3, 6), strength=0.0), x, atol=1e-5)


def test_shift_moves_content_by_the_documented_amount():
    # A full x-shift draw (u = 1) at a strength that makes it exactly one pixel of a 20-pixel image:
    # output(x) = input(x + shift), i.e. the content moves one pixel to the left.
    x = torch.rand(1, 1, 20, 20)
    u = CENTRE.clone()
    u[0, 4] = 1.0
    y = random_affine(x, u, strength=(2 / 20) / MAX_SHIFT)
    assert torch.allclose(y[..., :-1], x[..., 1:], atol=1e-5)


def test_rotation_draw_turns_the_image():
    x = torch.rand(1, 1, 16, 16)
    u = CENTRE.clone()
    u[0, 0] = 1.0
    y = random_affine(x, u, strength=90 / MAX_ROTATE)
    assert torch.allclose(y, torch.rot90(x, 1, (2, 3)), atol=1e-4) or torch.allclose(y, torch.rot90(x, -1, (2, 3)),
                                                                                      atol=1e-4)
    assert not torch.allclose(y, x, atol=1e-2)


def test_gradients_flow_to_the_images_and_bad_draws_are_refused():
    x = torch.rand(4, 1, 12, 12, requires_grad=True)
    random_affine(x, torch.rand(4, 6)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        random_affine(x, torch.rand(4, 5))
