"""Make `cli_kit.py` (run builders) importable by the CLI tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
