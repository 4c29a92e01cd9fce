"""Events and training data, and their file formats."""

from hepsbi.data.training import TrainingData

__all__ = ["TrainingData"]
