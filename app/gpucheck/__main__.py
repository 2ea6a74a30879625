"""``python -m app.gpucheck``: see :mod:`app.gpucheck.cli`."""

import sys

from app.gpucheck.cli import main

sys.exit(main())
