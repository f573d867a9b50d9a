"""Optimizer parameter groups: SSM parameters get their own learning rate and no weight decay.

As in the S4 and Mamba code, the parameters of the continuous-time system --
``log_dt``, ``Lambda_log_neg_re``, ``Lambda_im``, ``P``, ``B`` (S4/S4D) and
``A_log`` (Mamba) -- are trained with a smaller learning rate and without
weight decay (decay would pull ``Re(Lambda)`` and ``dt`` towards values the
parameterization never meant). ``ssm_param_labels`` marks them ``"ssm"``,
everything else ``"default"``; ``with_ssm_group`` routes them through
:func:`optax.multi_transform`.
"""

from __future__ import annotations

from typing import Any

import optax
from flax import traverse_util

SSM_PARAM_NAMES = frozenset({"log_dt", "Lambda_log_neg_re", "Lambda_im", "P", "B", "A_log"})
SSM_BACKBONES = ("s4", "s4d", "mamba")


def ssm_param_labels(params: Any) -> Any:
    """The pytree of ``params`` with each leaf replaced by ``"ssm"`` (named in ``SSM_PARAM_NAMES``) or ``"default"``."""
    flat = traverse_util.flatten_dict(params)
    labels = {path: "ssm" if path[-1] in SSM_PARAM_NAMES else "default" for path in flat}
    return traverse_util.unflatten_dict(labels)


def with_ssm_group(
    default: optax.GradientTransformation, ssm: optax.GradientTransformation
) -> optax.GradientTransformation:
    """``default`` for ordinary parameters, ``ssm`` (e.g. ``optax.adam(1e-3)``: no decay) for SSM ones."""
    return optax.multi_transform({"default": default, "ssm": ssm}, ssm_param_labels)
