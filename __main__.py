"""The Pulumi program (`pulumi up`). Kept thin: what to deploy is the stack description (stack.description),
how to deploy it is infra.component.SpotOptimizer, and the settings come from `pulumi config` (infra.config)."""

import pulumi

from infra.component import SpotOptimizer
from infra.config import load_settings

optimizer = SpotOptimizer("asg-optimizer", load_settings())
for key, value in optimizer.outputs.items():
    pulumi.export(key, value)
