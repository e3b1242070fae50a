"""``type = "sim"``: a simulated Kamstrup 382L (the embedded default meter)."""
