"""Operator side of asg-optimizer: the stack description, the ASL renderer, the embedded AWS and the CLI."""
