"""What `asg-optimizer status` costs on a large fleet: wall time and output size for N opted-in groups on the
embedded AWS (a mix of shapes and policies; a few swapped, one forced below its floor so the marker shows).

    python bench/status_fleet.py [GROUPS]        # default 200

Prints the build time, then `status` (table and JSON) timed over two runs each, and the table's first lines.
"""

from __future__ import annotations

import sys
import time

from typer.testing import CliRunner

from asg_optimizer.cli import app
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network

POLICIES: tuple[dict[str, str], ...] = ({}, {"AsgOptimiser:MinOnDemand": "1"}, {"AsgOptimiser:MaxParallel": "2"},
            {"AsgOptimiser:Window": "22-06", "AsgOptimiser:MinOnDemandPercent": "50"})


def main(count: int) -> None:
    runner = CliRunner()
    with EmbeddedAws(boot_delay_seconds=0) as aws:
        started = time.monotonic()
        network = create_network(prefix_length=20)  # ~400 instances: more than a /24 per zone holds
        for n in range(count):
            create_group(network, GroupSpec(f"fleet-{n:03d}-{'api' if n % 3 else 'worker'}", desired=1 + n % 3,
                                            max_size=4, instance_type=("m5.large", "c5.xlarge", "r5.large")[n % 3],
                                            extra_tags=dict(POLICIES[n % len(POLICIES)])))
        print(f"built {count} groups ({sum(1 + n % 3 for n in range(count))} instances) in "
              f"{time.monotonic() - started:.1f} s")
        for label, args in (("table", ["status"]), ("json", ["-o", "json", "status"])):
            for attempt in (1, 2):
                began = time.monotonic()
                result = runner.invoke(app, args)
                took = time.monotonic() - began
                assert result.exit_code == 0, result.output
                print(f"status ({label}) run {attempt}: {took:.2f} s, {len(result.stdout.splitlines())} lines, "
                      f"{len(result.stdout):,} bytes")
        print("\n".join(runner.invoke(app, ["status"]).stdout.splitlines()[:8]))
        print("...")
        print("\n".join(runner.invoke(app, ["status"]).stdout.splitlines()[-6:]))
        del aws


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
