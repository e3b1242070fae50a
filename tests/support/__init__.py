"""Real peers for the tests: a mosquitto broker, a gateway subprocess, free ports."""
