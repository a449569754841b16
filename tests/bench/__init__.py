"""Tests mirror the package; helpers are imported as `tests.<dir>.<module>`."""
