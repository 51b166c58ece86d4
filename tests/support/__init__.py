"""What the tests share besides fixtures: services, processes, runs and a TCP relay.

Tests import from here, never from a conftest (a conftest is pytest's, not a module).
"""
