"""The simulated platform: a fake social network for the demo and the tests (see README.md)."""

from .connector import SimulatorConnector, SimulatorSettings

__all__ = ["SimulatorConnector", "SimulatorSettings"]
