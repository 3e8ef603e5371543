"""FOA, the Flex-Offer Agent: the daemon on a prosumer's gateway.

It must run on a 32-bit ARM board with 512 MB of RAM: nothing on its import path may pull in
OR-Tools, numpy or any :mod:`cloud` module (a test enforces it).
"""
