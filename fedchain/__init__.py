"""fedchain: auditable federated learning. Contracts coordinate, nodes train, anyone verifies."""

__version__ = "0.1.0"
