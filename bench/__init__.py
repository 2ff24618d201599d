"""The benchmark: ``python -m bench [--quick]`` (what ``make bench`` runs). See :mod:`bench.cli`."""
