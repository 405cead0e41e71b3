"""Errors the workflow routes on. The class name is the Step Functions error name, so keep them stable."""


class SwapRefused(Exception):
    """Validate found a reason not to start; nothing has been changed."""


class GroupNotFound(SwapRefused):
    pass


class NotOptedIn(SwapRefused):
    pass


class InstanceNotEligible(SwapRefused):
    pass


class SwapInFlight(SwapRefused):
    pass


class InvalidInput(SwapRefused):
    pass


class AwsThrottled(Exception):
    """An AWS call was throttled or hit ResourceContention after the SDK's own jittered retries."""


class SpotNotReady(Exception):
    """The spot instance failed its status checks, stopped, or did not get ready in the allowed polls."""


class SpotNotHealthy(Exception):
    """The spot did not become healthy in every load balancer of its group within lb_max_polls."""


class LaunchHookInTheWay(SwapRefused):
    pass


class WeightedGroup(SwapRefused):
    pass


class GroupNotReady(Exception):
    """The spot never became InService in the group, or the group could not spare the on-demand instance."""


class SpotNotVisibleYet(Exception):
    """EC2 does not show a spot we launched yet (eventual consistency): retried, so Cleanup does not lose it."""


class OnDemandGone(Exception):
    """The on-demand instance left the group (terminated or detached by someone else) mid-swap."""


class MalformedPolicy(SwapRefused):
    """A policy tag of the group is malformed (or rules out every instance type): the owner must fix it."""


class OnDemandFloor(SwapRefused):
    """The swap would take the group below its on-demand floor (MinOnDemand / MinOnDemandPercent)."""


class OutsideWindow(SwapRefused):
    """The group's `AsgOptimiser:Window` excludes the hour."""


class CoveredByCommitment(SwapRefused):
    """A manual swap to spot would leave a Reserved Instance or Savings Plan paid for and idle."""


class UnsupportedPlatform(SwapRefused):
    """Spot prices exist only for the plain OS products; licensed extras (SQL Server, ...) have no spot market."""


# Validate's refusals: the workflow ends SUCCEEDED with outcome `refused` for these, FAILED for anything else.
REFUSALS = ("GroupNotFound", "NotOptedIn", "InstanceNotEligible", "SwapInFlight", "InvalidInput", "LaunchHookInTheWay",
            "WeightedGroup", "MalformedPolicy", "OnDemandFloor", "OutsideWindow", "CoveredByCommitment",
            "UnsupportedPlatform")
