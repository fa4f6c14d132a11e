"""The sandbox: a built-in Slack on 127.0.0.1 that the real bot talks to.

The same code is the test suite's stand-in for Slack, so what the sandbox shows is what the
tests check."""
