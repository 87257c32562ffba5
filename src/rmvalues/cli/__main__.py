"""``python -m rmvalues.cli``: the ``rmvalues`` command, for environments without the script."""

import sys

from rmvalues.cli import main

sys.exit(main())
