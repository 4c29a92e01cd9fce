"""Events and training data, and their file formats."""

from hepsbi.data.events import Events, EventStore, inspect_events
from hepsbi.data.training import TrainingData

__all__ = ["Events", "EventStore", "TrainingData", "inspect_events"]
