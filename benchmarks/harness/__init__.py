"""What every benchmark shares, so each script keeps only its own stages and summary.

* ``procs``: start and stop clusterwatch and redis-server (free ports, readiness by PING,
  CPU pinning, every child stopped by PID), and other child processes.
* ``system``: CPU seconds and RSS of a PID, the machine's busy time, the interpreter and
  how it was built (PGO/LTO), git and machine facts for a result's header.
* ``resp``: one RESP encoder and one small blocking client (hiredis to parse replies).
* ``redis_benchmark``: a redis-benchmark run (server CPU from /proc, the tool's from
  wait4()) and its ``--csv`` output.
* ``runner``: the common options (``--quick``, ``--runs``, ``--out``), logging, signals,
  results as JSON lines plus a markdown summary, and number formats.
* ``nodes``: simulated clusters' node messages; ``loadgen``: the pipelined BUS PUBLISH /
  XADD load generator (a child process); ``inproc``: a built, never started server for
  in-process measurements.
"""
