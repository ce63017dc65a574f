"""Double-entry, hash-chained Beancount books of a shared-purchase points platform."""

__version__ = "0.1.0"
