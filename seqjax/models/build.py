"""A whole model from config: input layer -> registry backbone -> head.

``SequenceModel(inputs, lengths) = head(backbone(embed(inputs), lengths), lengths)`` where ``embed`` is
a learned table ``E[token]`` (``[B, T] -> [B, T, embed_dim]``) for token inputs and the identity for
float inputs ``[B, T, F]`` (the first backbone layer owns the input projection).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from seqjax.errors import UserError
from seqjax.models.heads import make_head
from seqjax.models.registry import build_backbone, is_causal
from seqjax.tasks import Task

Array = jax.Array


class SequenceModel(nn.Module):
    """``head(backbone(embed(x), lengths))``; ``vocab=None`` means float inputs."""

    backbone: nn.Module
    head: nn.Module
    vocab: int | None = None
    embed_dim: int = 32

    @nn.compact
    def __call__(self, inputs: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        x = nn.Embed(self.vocab, self.embed_dim, name="embed")(inputs) if self.vocab else inputs
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
    return SequenceModel(
        backbone=build_backbone(model_name, opts),
        head=make_head(task.kind, task.output_dim),
        vocab=task.input_vocab,
        embed_dim=embed_dim,
    )
