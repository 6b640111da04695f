"""evallint: a linter for the evaluation and metric code of deep-learning scripts."""
__version__ = "0.1.0"
