"""REGNN facial-reaction generation on REACT: a reproducible pipeline library."""

__version__ = "0.1.0"
