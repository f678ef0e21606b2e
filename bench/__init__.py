"""gvnfm benchmarks: every figure is a ratio against a floor measured in the same run on the same broker.

Run ``.venv/bin/python -m bench --help``; see docs/performance.md.
"""
