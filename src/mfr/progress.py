"""The progress-reporting hook library code accepts: ``progress(items, total, label)`` yields the items.

The CLI passes a click progress bar (``mfr.cli.common.progress_bar``); library callers get ``no_progress``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


def no_progress(items: Iterable[Any], total: int, label: str) -> Iterable[Any]:
    return items
