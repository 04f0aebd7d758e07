"""Synthetic test sets generated from a corpus, and their human review."""
