"""The deployed stack as data (`stack.description`) and the ASL renderer (`stack.render`), shared by the Pulumi
program (`infra/`) and the embedded AWS (`asg_optimizer.local`), so what is deployed and what is tested agree."""
