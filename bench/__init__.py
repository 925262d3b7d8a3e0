"""Benchmarks of the mlgenai server (``python -m bench``; DESIGN.md "Performance").

Modules: ``loadgen`` (closed-loop load generator), ``ops`` (what a caller does), ``workload``
and ``suite`` (the workloads), ``runner`` (one backend pass), ``echo`` (the bare grpcio ceiling),
``databases`` (fresh databases and seeding), ``procstat`` (CPU and memory from /proc),
``targets`` and ``report`` (output). Traces, OTLP and assessments (issue 3): ``trace_suite``
(the workloads), ``trace_ops`` (their requests), ``trace_prep`` and ``trace_seed`` (fixtures),
``trace_checks`` (probes and the stored-spans check).
"""
