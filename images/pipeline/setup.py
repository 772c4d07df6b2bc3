"""The C extension of the package (event_pipeline._fastscan); everything else is in
pyproject.toml. EVENT_PIPELINE_FASTSCAN=0 installs without it (the generator image, which
does not aggregate and has no compiler); the aggregator then takes its pure-Python path."""

import os

from setuptools import Extension, setup

build = os.environ.get("EVENT_PIPELINE_FASTSCAN", "1") != "0"
fastscan = Extension(
    "event_pipeline._fastscan",
    sources=["src/event_pipeline/_fastscan.c"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],  # C99 (tests/pipeline/test_fastscan.py)
)
setup(ext_modules=[fastscan] if build else [])
