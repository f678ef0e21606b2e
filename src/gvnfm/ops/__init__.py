"""What operators run the daemons with: metrics, health, the small HTTP endpoint, signals."""
