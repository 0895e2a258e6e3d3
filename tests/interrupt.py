"""Interrupting a training after one of its epochs, as Ctrl-C or a killed process would: for the
tests that resume it from its checkpoint."""
from __future__ import annotations


class Stop(Exception):
    """Raised by a `stop_after` callback."""


def stop_after(epoch: int):
    """An on_epoch callback for `fit` (row, model) or `fit_stacked` (k, row, model) that raises
    Stop when epoch `epoch` (1-based) has ended."""
    def on_epoch(*args) -> None:
        if args[-2]["epoch"] == epoch:
            raise Stop
    return on_epoch
