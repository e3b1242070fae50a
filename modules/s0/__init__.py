"""``type = "s0"``: S0 pulse input on a GPIO line (libgpiod v2), and S0 pulse output."""
