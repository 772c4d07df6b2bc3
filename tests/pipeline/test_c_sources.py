"""The package's C extensions compile as strict C99 with every warning an error (setup.py
builds them with -Wall -Wextra)."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from event_pipeline import model
from needs import unavailable


@pytest.mark.parametrize("name", ["_fastscan.c", "_fastgen.c"])
def test_source_is_warning_free_c99(name: str) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        unavailable("gcc is missing (apt-get install gcc python3-dev)")
    source = Path(model.__file__).with_name(name)
    include = sysconfig.get_paths()["include"]
    flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
    proc = subprocess.run(
        [gcc, *flags, f"-I{include}", str(source)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
