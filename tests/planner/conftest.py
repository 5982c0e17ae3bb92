"""Make the shared builders in `planner_kit.py` importable by the planner tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
