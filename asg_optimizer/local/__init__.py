"""The embedded AWS: moto with its ASL interpreter, our handlers run in-process, and models of what moto lacks."""
