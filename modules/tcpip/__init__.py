"""The tcpip module."""
