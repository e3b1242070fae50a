"""The Z-Wave module: the gateway as a Z-Wave meter node behind a Serial API end-node stick."""
