"""`daedalus bench soak` (issue 24): run.py drives the cycles, venues.py the fake venues and collectors
of one cycle (a child process), checks.py what is checked, report.py what is printed."""

from daedalus.devkit.soak.report import SoakReport
from daedalus.devkit.soak.run import FAULTS, run_soak

__all__ = ["FAULTS", "SoakReport", "run_soak"]
