"""The local control API of ``gvnfm up`` (REST, OpenAPI at /docs and /openapi.json)."""
