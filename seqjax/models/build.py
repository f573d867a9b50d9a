"""A whole model from config: input layer -> registry backbone -> head.

``SequenceModel(inputs, lengths) = head(backbone(embed(inputs), lengths), lengths)`` where ``embed`` is
a learned table ``E[token]`` (``[B, T] -> [B, T, embed_dim]``) for token inputs and the identity for
float inputs ``[B, T, F]`` (the first backbone layer owns the input projection).  The embedding and
the head follow the backbone's ``dtype`` / ``param_dtype`` (:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.errors import UserError
from seqjax.models.heads import make_head
from seqjax.models.precision import compute_dtype, param_dtype
from seqjax.models.registry import build_backbone, is_causal
from seqjax.tasks import Task

Array = jax.Array


class SequenceModel(nn.Module):
    """``head(backbone(embed(x), lengths))``; ``vocab=None`` means float inputs."""

    backbone: nn.Module
    head: nn.Module
    vocab: int | None = None
    embed_dim: int = 32
    dtype: Any = None  # the embedding's output dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        x = nn.Embed(self.vocab, self.embed_dim, **dtypes, name="embed")(inputs) if self.vocab else inputs
        y = self.backbone(x, lengths, deterministic=deterministic)
        return self.head(y, lengths)


def check_causal(task: Task, model_name: str, opts: Any) -> None:
    """Reject a non-causal (e.g. bidirectional) backbone on a task whose targets appear in later inputs.

    On such a task (``task.causal``: MQAR, where each answer is the token after its query) a backward
    pass would read the answer.  Elsewhere (copy, selective copying, induction: the answers lie in the
    past) a bidirectional model is a fair, if different, contender.
    """
    if task.causal and not is_causal(model_name, opts):
        raise UserError(
            f"model {model_name!r} is not causal (bidirectional) but task {task.name!r} has its answers among the "
            "later inputs, which a backward pass would read: use a causal model (model.bidirectional=false; "
            "model.causal=true for the transformer)"
        )


def build_model(model_name: str, opts: Any, task: Task, embed_dim: int = 32) -> SequenceModel:
    """The model for ``task``: backbone ``model_name`` built from ``opts``, head from ``task.kind``."""
    check_causal(task, model_name, opts)
    # a backbone without the precision keys (registered elsewhere) gets float32 embedding and head
    dtypes = dict(dtype=compute_dtype(opts), param_dtype=param_dtype(opts)) if hasattr(opts, "param_dtype") else {}
    return SequenceModel(
        backbone=build_backbone(model_name, opts),
        head=make_head(task.kind, task.output_dim, dtypes.get("param_dtype", jnp.float32)),
        vocab=task.input_vocab,
        embed_dim=embed_dim,
        **dtypes,
    )
