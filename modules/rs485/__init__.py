"""The rs485 module."""
