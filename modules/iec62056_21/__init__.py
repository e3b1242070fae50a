"""IEC 62056-21 over a link: the readout session and its options."""
