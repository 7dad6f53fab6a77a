"""pytest runs with --import-mode=importlib (one session over every distribution's tests), so this folder is put on
sys.path for the tests to import their shared helpers, and the helpers' fixtures are re-exported here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lrtk0_testing import *  # noqa: E402,F401,F403
