"""meter-gateway: the core (config, supervisor, engine, store, outputs)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meter-gateway")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
