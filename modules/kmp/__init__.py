"""KMP over a link: the master session and its options."""
