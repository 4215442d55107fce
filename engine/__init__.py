"""Spot Optimizer's pure decision core: domain types, catalog, traces, learning, policies, simulation.

Nothing in this package performs I/O beyond reading files it is handed, reads a clock, or imports Ray,
FastAPI or a database driver (tests/test_layers.py enforces it).
"""
