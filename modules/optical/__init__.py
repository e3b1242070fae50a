"""The optical module."""
