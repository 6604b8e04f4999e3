"""``python -m chatrec`` is the ``chatrec`` command."""

import sys

from chatrec.ui.cli import main

sys.exit(main())
