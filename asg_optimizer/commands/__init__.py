"""The operator CLI's commands, one module per command group; asg_optimizer.cli puts them together."""
