"""A local SLURM cluster and the SLURM profile test helpers (see cluster.py and fixtures.py)."""
