"""`asg-optimizer demo`: a fleet in the embedded AWS swapped to spot while you watch (`run`), priced before and
after (`fleet_cost`), each execution's current state read as the console shows it (`execution_state`)."""
