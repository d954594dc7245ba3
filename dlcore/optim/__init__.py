"""Optimizers, learning-rate schedules, gradient clipping and the max-norm constraint.

    opt = dlcore.optim.Adam(lr=1e-3, weight_decay=1e-4, clip_norm=5.0)
    opt.update(model.params, model.grads)     # in place, every key

Every optimizer takes ``(params, grads)`` mappings with the same keys; see
:mod:`dlcore.optim.optimizers` for the order of clipping, decay, step and max-norm.
"""

from dlcore.optim.constraints import apply_max_norm, clip_grad_norm, clipped, global_norm, renorm, unit_norms
from dlcore.optim.optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSProp
from dlcore.optim.schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    LinearDecay,
    Schedule,
    StepDecay,
    Warmup,
    constant,
)

__all__ = [
    "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW",
    "Schedule", "Constant", "constant", "StepDecay", "LinearDecay", "ExponentialDecay", "CosineDecay", "Warmup",
    "global_norm", "clip_grad_norm", "clipped", "unit_norms", "renorm", "apply_max_norm",
]
