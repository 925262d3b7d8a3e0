"""A load generator for a running mlgenai server (``python -m loadtest``; README "Load testing").

Modules: ``cli`` (arguments, ``run``, ``main``), ``scheduler`` (open- and closed-loop drivers,
progress line), ``stats`` (what is measured), ``calls`` (timed stubs), ``scenarios`` (what the
callers do: ``agent``, ``eval``, ``readers``, ``mix``), ``report`` (table, JSON, PNG). Requests
reuse the builders of ``bench`` (``bench.trace_ops``, ``bench.dataset_seed``).
"""

from loadtest.cli import Config, main, run

__all__ = ["Config", "main", "run"]
