"""``python -m evojax_zero``: see :mod:`evojax_zero.cli`."""

import sys

from evojax_zero.cli import main

sys.exit(main())
