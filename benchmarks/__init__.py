"""clusterwatch's benchmarks: ``python -m benchmarks.<name>`` runs one (see README.md); the
shared machinery is in ``benchmarks.harness``."""
