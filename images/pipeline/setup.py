"""The C extensions of the package; everything else is in pyproject.toml.

event_pipeline._fastscan is the aggregator's fast path, event_pipeline._fastgen the
generator's loop; without them both tools take their pure-Python paths (same results).
"""

from setuptools import Extension, setup


def extension(name: str) -> Extension:
    return Extension(
        f"event_pipeline.{name}",
        sources=[f"src/event_pipeline/{name}.c"],
        # C99, warning-free (tests/pipeline/test_fastscan.py compiles with -std=c99 -Werror)
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    )


setup(ext_modules=[extension("_fastscan"), extension("_fastgen")])
