"""Client helpers: to be written."""

from __future__ import annotations


class RunsMixin:
    pass
