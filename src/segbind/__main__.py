"""``python -m segbind``: the ``segbind`` command."""

import sys

from .cli import main

sys.exit(main())
