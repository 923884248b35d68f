"""Data specs -> Splits. Built-in sets are generated or shipped, never downloaded."""

from edgekd.data.load import load_run_splits, load_splits, load_transfer
from edgekd.data.splits import Splits

__all__ = ["Splits", "load_run_splits", "load_splits", "load_transfer"]
