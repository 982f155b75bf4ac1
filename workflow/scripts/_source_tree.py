"""Imported first by every workflow script: puts this workflow's own source tree (`../../src`) first on
`sys.path`, so a job runs the regnn code that its rule's params digest (`regnn.provenance`), whichever
regnn package (if any) its environment has installed. The conda environment holds third-party packages
only, so a workflow deployed as a module, or from any checkout, runs its own code."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
