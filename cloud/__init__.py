"""FMAN (aggregator) and FMAR (market) workers, optimisation, settlement and the `atp` CLI.

Imports :mod:`protocol`, never :mod:`agent`: the cloud and the gateway share only the wire.
"""
