"""The physics of the loads, shared by the generators (which predict) and the simulated devices
(which integrate): one description of a house, a tank, a freezer, a battery, a car, a PV array,
so that an offer and the device it describes cannot drift apart.

Pure functions of numbers (``math`` only: the agent runs without numpy). Units are in the
names: ``_c`` degrees Celsius, ``_k`` kelvin differences, ``_kw``/``_w`` power, ``_kwh``
energy, ``_h``/``_s`` durations.
"""
