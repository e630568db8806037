"""`python -m local.moto [--port 5000] [--state-file F]`: the moto server in the foreground, for debugging."""

import sys

from local.moto.process import main

sys.exit(main())
