"""Where the tools find the evaluation data: the dev calls, complaints.tsv, coach_text and the floor corpus.

The data is not package data: the dev calls are megabytes of audio the tests use too, so it stays in the
checkout's tests/data and the tools are pointed at it: ``CALMLINE_EVAL_DATA`` (``calmline eval --eval-data``),
else ``tests/data`` under the current directory (a checkout's root). Package code never finds it by its own path.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CALMLINE_EVAL_DATA"


def data_dir() -> Path:
    return Path(os.environ.get(ENV) or Path.cwd() / "tests" / "data").resolve()
