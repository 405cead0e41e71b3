"""The AWS adapters: the only Lambda-side code that calls boto3. One reader per resource, used by the handlers
(on their cached clients) and the CLI alike."""
