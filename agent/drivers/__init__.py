"""Device drivers: Modbus (register maps as data), serial meters, smart plugs, simulated devices."""
