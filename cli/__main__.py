"""``python -m cli``: the ``treadmill-safety`` command."""

import sys

from cli.main import main

sys.exit(main())
