"""Strict numerics for every test: strict dtype promotion, rank promotion raises, warnings are errors.

8 virtual CPU devices are created so that the sharding tests run in the same process.
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "loose_promotion: run without strict dtype/rank promotion (third-party model code)",
    )


@pytest.fixture(autouse=True)
def _strict_numerics(request):
    if request.node.get_closest_marker("loose_promotion"):
        yield
        return
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield
