"""trainflow: from data in an object store to a served model in one command."""

__version__ = "0.1.0"
