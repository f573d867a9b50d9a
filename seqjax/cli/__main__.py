"""``python -m seqjax.cli ...`` (what ``seqjax sweep`` runs for each trial)."""

import sys

from seqjax.cli import main

sys.exit(main())
