"""jiesu: shared plumbing (config, database, outbox, consumers, logging, auth) and the CLI."""

__version__ = "0.1.0"
