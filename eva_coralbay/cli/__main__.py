"""Allows `python -m eva_coralbay.cli`."""

import sys

from eva_coralbay.cli import main

sys.exit(main())
