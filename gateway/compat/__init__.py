"""Outputs that speak other devices' local APIs (HomeWizard P1, Shelly Pro 3EM/EM), read-only,
from the typed meter view (gateway/view.py). See README.md in this folder."""
