"""Benchmarks of the mlgenai server (``python -m bench``; DESIGN.md "Performance").

Modules: ``loadgen`` (closed-loop load generator), ``ops`` (what a caller does), ``suite`` (the
workloads), ``runner`` (one backend pass), ``echo`` (the bare grpcio ceiling), ``databases``
(fresh databases and seeding), ``procstat`` (CPU and memory from /proc), ``targets`` and
``report`` (output).
"""
