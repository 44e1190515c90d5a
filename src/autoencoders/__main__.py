"""``python -m autoencoders`` is the ``autoencoders`` command."""

import sys

from .cli import main

sys.exit(main())
