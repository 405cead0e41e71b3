"""The embedded AWS: moto with its ASL interpreter, our handlers run in-process, and models of what moto lacks."""

import os

# Handlers create their Powertools Logger at import, which may come before the embedded AWS starts: quiet them
# (warnings and errors still show) unless the caller chose a level.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "asg-optimizer")
