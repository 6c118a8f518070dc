"""The aggregator: opens rounds, checks updates against commitments, merges, finalizes."""

from fedchain.aggregator.compute import RoundComputation, UpdateDecision, compute_round
from fedchain.aggregator.service import Aggregator, RoundSummary

__all__ = ["Aggregator", "RoundComputation", "RoundSummary", "UpdateDecision", "compute_round"]
