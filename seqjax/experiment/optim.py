"""Optimizers from config: ``optax.chain(clip_by_global_norm(theta), optimizer(schedule))``.

Clipping first rescales the raw gradient, ``g <- g * min(1, theta / ||g||_2)`` (Pascanu et al. 2013);
the optimizer then sees the clipped gradient.  Schedules: ``constant`` (``lr``) and
``warmup_cosine`` (linear 0 -> lr over ``warmup_steps``, then cosine to ``lr * final_lr_fraction`` at
the last step).  With ``optim.ssm_lr`` set and a workload that labels its parameters, leaves labelled
``"ssm"`` get their own optimizer with that lr and no weight decay (``optax.multi_transform``).
Every numeric value may be a traced array (a vmapped sweep's, through ``optax.inject_hyperparams``:
:mod:`~seqjax.experiment.vmapped`), so no Python branch looks at one.
"""

from __future__ import annotations

from typing import Any, Callable

import optax

from seqjax.errors import UserError
from seqjax.models.blocks import ssm_param_labels


def make_schedule(cfg: Any, total_steps: int, lr: float | None = None) -> optax.Schedule:
    lr = cfg.lr if lr is None else lr
    if cfg.schedule == "constant":
        return optax.constant_schedule(lr)
    shape = optax.warmup_cosine_decay_schedule(  # peak 1, scaled by lr: optax branches on the peak's value
        init_value=0.0, peak_value=1.0, warmup_steps=cfg.warmup_steps,
        decay_steps=max(total_steps, cfg.warmup_steps + 1), end_value=cfg.final_lr_fraction,
    )
    return lambda step: lr * shape(step)


def _momentum(cfg: Any) -> Any:
    """``None`` (no momentum) for 0; a traced value is nonzero (a vmapped sweep groups zero apart)."""
    return None if isinstance(cfg.momentum, (int, float)) and cfg.momentum == 0 else cfg.momentum


def _base(cfg: Any, schedule: optax.Schedule, weight_decay: float) -> optax.GradientTransformation:
    if cfg.name == "adam":
        return optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    if cfg.name == "adamw":
        return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=weight_decay)
    if cfg.name == "rmsprop":
        return optax.rmsprop(schedule, decay=cfg.decay, eps=cfg.eps, momentum=_momentum(cfg))
    return optax.sgd(schedule, momentum=_momentum(cfg), nesterov=cfg.nesterov)


def make_optimizer(
    cfg: Any, total_steps: int, param_labels: Callable[[Any], Any] | None = None
) -> optax.GradientTransformation:
    """The full chain for ``cfg`` (an ``OptimConfig``) over a run of ``total_steps``."""
    if cfg.name != "adamw" and cfg.weight_decay:
        raise UserError(f"optim.weight_decay={cfg.weight_decay} applies to adamw only: set optim.name=adamw "
                        "or optim.weight_decay=0")
    opt = _base(cfg, make_schedule(cfg, total_steps), cfg.weight_decay)
    if cfg.ssm_lr is not None:
        if param_labels is None:
            raise UserError("optim.ssm_lr is set but this model has no SSM parameter groups: set optim.ssm_lr=null")
        ssm = _base(cfg, make_schedule(cfg, total_steps, cfg.ssm_lr), 0.0)
        opt = optax.multi_transform({"default": opt, "ssm": ssm}, param_labels)
    clip = optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm is not None else optax.identity()
    return optax.chain(clip, opt)


def with_ssm_group(
    default: optax.GradientTransformation, ssm: optax.GradientTransformation
) -> optax.GradientTransformation:
    """``default`` for ordinary parameters, ``ssm`` (e.g. ``optax.adam(1e-3)``: no decay) for SSM ones."""
    return optax.multi_transform({"default": default, "ssm": ssm}, ssm_param_labels)
