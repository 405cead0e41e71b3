"""The Pulumi program (`pulumi up`). Kept thin: what to deploy is the stack description (stack.description),
how to deploy it is infra.component (one SpotOptimizer per region of the `regions` setting), and the settings
come from `pulumi config` (infra.config)."""

import pulumi

from infra.component import aws_scope, deploy, stack_outputs
from infra.config import load_settings

settings = load_settings()
home = aws_scope(settings.prefix)
for key, value in stack_outputs(deploy(settings, home=home), home.region).items():
    pulumi.export(key, value)
