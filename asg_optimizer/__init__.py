"""Operator side of asg-optimizer: the stack description, the ASL renderer, the embedded AWS and the CLI."""

import os

# The CLI imports the Lambda adapters (tasks.aws), whose one Powertools Logger reads its level and service at
# import, before any embedded AWS starts: quiet it here, first (warnings and errors still show on stderr's side
# of the output they share), unless the caller chose a level. Without it `demo` and `-o json` printed INFO lines.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "asg-optimizer")
