"""The VNF manager: plans (pure), their execution, and the NFVO-facing service."""
