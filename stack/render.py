"""The one ASL renderer: fills `${Name}` placeholders. Strict both ways, so a renamed placeholder or a
forgotten substitution fails at deploy time, not in the middle of a swap. (`string.Template` would also
treat `$` in JSONPath keys such as `"Payload.$": "$"` as syntax; this touches only `${Name}`.)"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from stack.description import StateMachine

PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


class RenderError(ValueError):
    pass


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(template: str, values: Mapping[str, str]) -> str:
    wanted = placeholders(template)
    missing, unused = sorted(wanted - set(values)), sorted(set(values) - wanted)
    if missing:
        raise RenderError(f"no value for placeholder(s) {', '.join(missing)}")
    if unused:
        raise RenderError(f"value(s) for unknown placeholder(s) {', '.join(unused)}")
    rendered = PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    json.loads(rendered)  # a value that broke the JSON is a deploy-time error
    return rendered


def render_state_machine(machine: StateMachine, function_arns: Mapping[str, str],
                         machine_arns: Mapping[str, str] | None = None) -> str:
    """Render `machine` with the ARNs of the deployed functions (and of the state machines it starts), keyed by
    function (state machine) key."""
    values = {placeholder: function_arns[key] for placeholder, key in machine.substitutions.items()}
    values |= {placeholder: (machine_arns or {})[key] for placeholder, key in machine.machines.items()}
    return render(machine.path.read_text(), values)
