"""The learning-rate schedule every model gets from the engine (``lr_decay`` in the config)."""
from __future__ import annotations


def lr_factor(step: int, steps: int, decay: float) -> float:
    """Multiplier of every learning rate at iteration ``step`` (0-based) of ``steps``: 1, then
    linear to 0 over the last ``decay`` fraction of the run (0: constant).

    Annealing the step size is what lets a GAN's players settle once the modes are found; with a
    constant rate they keep circling the equilibrium (SGAN's authors decay over the end of the run,
    CycleGAN over its second half).
    """
    span = decay * steps
    if span <= 0:
        return 1.0
    return max(0.0, min(1.0, (steps - step) / span))
