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
ORIGINAL_PREFIX = "AsgOptimiser:Original:"

# Per-ASG policy tags (parsed by tasks.core.policy; defaults and formats in docs/policy-tags.md).
POLICY_PREFIX = "AsgOptimiser:"
MIN_ON_DEMAND = "AsgOptimiser:MinOnDemand"
MIN_ON_DEMAND_PERCENT = "AsgOptimiser:MinOnDemandPercent"
MAX_PARALLEL = "AsgOptimiser:MaxParallel"
GRACE_PERIOD = "AsgOptimiser:GracePeriod"
ALLOWED_TYPES = "AsgOptimiser:AllowedTypes"
DENIED_TYPES = "AsgOptimiser:DeniedTypes"
WINDOW = "AsgOptimiser:Window"
LAUNCH_HOOKS = "AsgOptimiser:LaunchHooks"  # `bypass`: swap although attached spots skip the group's launch hooks
LAUNCH_HOOKS_BYPASS = "bypass"
PAUSE_ON_ALARMS = "AsgOptimiser:PauseOnAlarms"  # comma-separated CloudWatch alarms; one in ALARM pauses the group
COMMITMENTS = "AsgOptimiser:Commitments"  # use (default) | ignore: keep on-demand that RIs/Savings Plans pay for
# Every `AsgOptimiser:*` key an ASG may carry: anything else under the prefix is a typo and refused, so a
# misspelt policy never silently means "default". Add new group tag keys here.
POLICY_TAGS = (MIN_ON_DEMAND, MIN_ON_DEMAND_PERCENT, MAX_PARALLEL, GRACE_PERIOD, ALLOWED_TYPES, DENIED_TYPES, WINDOW,
               LAUNCH_HOOKS, PAUSE_ON_ALARMS, COMMITMENTS)
STATE_TAG_PREFIXES = (HOLD_PREFIX, ORIGINAL_PREFIX)


def is_opted_in(tags: dict[str, str]) -> bool:
    """Only the exact value `true` opts a group in: a typo must never start terminating instances."""
    return tags.get(OPT_IN) == OPT_IN_VALUE
