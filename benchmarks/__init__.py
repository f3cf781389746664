"""sharpax's benchmark suites (run from the repository root as modules: `python -m benchmarks.run`)."""
