"""Modbus devices as data: register maps in TOML templates run by one generic engine.

``templates/<name>.toml`` describes a device model (where its power, energy and set-points
live); a device table in ``foa.toml`` names a template, says how to reach the device
(``modbus_tcp``: ``host``/``port``; ``modbus_rtu``: a serial ``port``) and may override or add
entries. Adding a device model is adding a file, not writing a class.
"""

from agent.drivers.modbus.driver import ModbusRtuDriver, ModbusTcpDriver
from agent.drivers.modbus.templates import load_template, template_names

__all__ = ["ModbusRtuDriver", "ModbusTcpDriver", "load_template", "template_names"]
