"""Simulators of the seven systems and the synthetic organisation they serve (product code: demo, tests, benchmarks)."""
