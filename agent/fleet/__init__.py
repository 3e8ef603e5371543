"""The fleet simulator: many agents with simulated devices in one process (``atp sim fleet``)."""
