"""The embedded AWS: moto with its ASL interpreter, our handlers run in-process, and models of what moto lacks.

The Powertools defaults (a quiet log level) are set by the parent package, which is imported first."""
