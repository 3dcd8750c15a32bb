"""bgplab: a BGP route-exchange emulator and lab harness for Azure ExpressRoute."""

__version__ = "0.1.0"
