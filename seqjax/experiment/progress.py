"""A tqdm progress bar (steps/s, ETA, live loss); off when stderr is not a terminal or when disabled."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1,
        disable=not (enabled and sys.stderr.isatty()),
    )
