"""Protocol adapters (one package per config type) and their sans-IO codecs."""
