"""Imported by Python at start-up in the processes the tests start while ``$MAILHELPDESK_TEST_DAYS_AHEAD``
is set (tests/clock_ahead.py puts this folder on ``PYTHONPATH``): their wall clock moves ahead too."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:
    import clock_ahead
finally:
    del sys.path[0]
clock_ahead.start()
