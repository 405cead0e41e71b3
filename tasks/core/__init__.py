"""The pure decision core: no boto3, no I/O. Everything here is tested with plain values."""
