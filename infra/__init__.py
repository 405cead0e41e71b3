"""The Pulumi deployment of asg-optimizer: config, IAM, names, dashboard and the SpotOptimizer component."""
