"""Make the shared fake API in `reconcile_kit.py` importable by the controller tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
