"""Persistence: lifecycle operations, their progress, VNFRs, EMS registrations, script results."""
