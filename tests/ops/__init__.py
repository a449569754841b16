"""Tests of the pure-functional attention ops (`eala_jax.ops`).

A package so that `tests/ops/test_baselines.py` does not clash with
`tests/models/test_baselines.py`.
"""
