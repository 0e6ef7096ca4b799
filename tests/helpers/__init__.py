"""Plain helper modules shared by the test packages (import them); fixtures live in the conftest.py files."""
