"""Local VIMs: where VNFC instances (hosts) are created for the local orchestrator."""
