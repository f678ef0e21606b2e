"""A network service on one machine: the local orchestrator, the VNFM and local hosts in one
process (``gvnfm up``)."""
