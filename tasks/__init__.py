"""Lambda code: one small handler module per workflow step, over the boto3-free decision core in `tasks.core`."""
