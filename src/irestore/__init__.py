"""irestore: text-guided universal image restoration with a mean-reverting SDE."""

__version__ = "0.1.0"
