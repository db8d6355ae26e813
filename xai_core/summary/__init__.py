"""The summary format: one owner module, writer and reader side by side (see FORMAT.md)."""

from .format import FORMAT_VERSION
from .reader import RunReader, find_runs
from .writer import RunWriter, write_part

__all__ = ["FORMAT_VERSION", "RunReader", "RunWriter", "find_runs", "write_part"]
