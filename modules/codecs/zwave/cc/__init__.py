"""Z-Wave command classes: the basics and the classes a meter node answers besides Meter."""
