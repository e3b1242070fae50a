"""meter-gateway: the core (config, supervisor, engine, store, outputs)."""

# The one place the version is written: pyproject.toml reads it from here at build time
# ([tool.setuptools.dynamic]), and the gateway reads it without importlib.metadata.
__version__ = "0.1.0"
