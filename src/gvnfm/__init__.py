"""gvnfm: a Generic VNF Manager and EMS, wire-compatible with Open Baton."""

__version__ = "0.1.0"
