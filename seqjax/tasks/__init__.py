"""Data: pure synthetic generators ``key -> batch`` (adding, copy memory, ...), by name."""

from seqjax.tasks.base import TASK_KINDS, Task, TaskSpec
from seqjax.tasks.registry import get_task, make_task, register_task
from seqjax.tasks.splits import fixed_split, split_key, train_batch
from seqjax.typing import Batch

__all__ = [
    "TASK_KINDS", "Batch", "Task", "TaskSpec", "fixed_split", "get_task", "make_task",
    "register_task", "split_key", "train_batch",
]
