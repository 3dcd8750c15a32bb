"""`python -m bgplab` is the `bgplab` command."""

import sys

from bgplab.cli import main

sys.exit(main())
