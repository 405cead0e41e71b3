"""The Pulumi program (`pulumi up`). Kept thin: the stack itself is described in asg_optimizer.stack."""
