"""``type = "tariff_input"``: the active tariff from GPIO lines, like the 382L's tariff modules."""
