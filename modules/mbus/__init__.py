"""Wired M-Bus: the adapter, its master, the scan tool and a slave emulator."""
