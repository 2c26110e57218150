"""Imported by Python at start-up in the processes the tests start with tests/clocks_site on ``PYTHONPATH``
(see tests/clocks.py): their wall clock is the one the test gave them, or the session's, moved ahead."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:
    import clocks
finally:
    del sys.path[0]
clocks.start()
