"""``python -m clusterwatch``: the ``clusterwatch`` command."""

import sys

from clusterwatch.server.cli import main

sys.exit(main())
