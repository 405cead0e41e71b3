"""Tag keys the optimizer reads and writes; one place so IAM conditions, handlers and the sweep agree."""

OPT_IN = "AsgOptimiser"
OPT_IN_VALUE = "true"

# Set on every spot instance we launch, at creation (RunInstances TagSpecifications).
REPLACES = "AsgOptimiser:Replaces"
EXECUTION = "AsgOptimiser:Execution"

# Written on the ASG while a swap holds changed settings, so a crashed execution can be repaired by the sweep.
HOLD_PREFIX = "AsgOptimiser:Hold:"
ORIGINAL_MAX_SIZE = "AsgOptimiser:Original:MaxSize"
ORIGINAL_SUSPENDED = "AsgOptimiser:Original:Suspended"


def is_opted_in(tags: dict[str, str]) -> bool:
    """Only the exact value `true` opts a group in: a typo must never start terminating instances."""
    return tags.get(OPT_IN) == OPT_IN_VALUE
