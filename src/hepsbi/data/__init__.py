"""Events and training data, and their file formats."""

from hepsbi.data.events import Events, EventStore, inspect_events
from hepsbi.data.training import TrainingData, inspect_training

__all__ = ["Events", "EventStore", "TrainingData", "inspect_events", "inspect_training"]
