"""``python -m replikit``: the same command line as the ``replikit`` script."""

import sys

from .cli import main

sys.exit(main())
