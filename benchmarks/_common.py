"""What every benchmark shares: where the research data lies.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and ``from _common import
SHARED`` works from any working directory.
"""

import os
from pathlib import Path

#: the research data (../shared beside the repository, or $FACEDANCER_TEST_DATA), as the tests find it
SHARED = Path(os.environ.get("FACEDANCER_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared")
