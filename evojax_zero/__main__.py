"""``python -m evojax_zero``: see :mod:`evojax_zero.experiment.cli`."""

import sys

from evojax_zero.experiment.cli import main

sys.exit(main())
