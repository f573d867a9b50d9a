"""seqjax.experiment."""

from __future__ import annotations



