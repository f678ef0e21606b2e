"""The ``gvnfm`` command."""
