"""Z-Wave Serial API messages: function ids, set-up messages, transport messages."""
