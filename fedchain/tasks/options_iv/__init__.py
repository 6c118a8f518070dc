"""The built-in ``options-iv`` task: a federated crypto implied-volatility surface."""

from fedchain.tasks.options_iv.market import FEATURES, TARGET, VENUES, Venue, venue_for
from fedchain.tasks.options_iv.model import SurfaceMLP
from fedchain.tasks.options_iv.task import OptionsIVTask

__all__ = ["FEATURES", "TARGET", "VENUES", "OptionsIVTask", "SurfaceMLP", "Venue", "venue_for"]
