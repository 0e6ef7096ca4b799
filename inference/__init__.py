"""wholedoc: inference."""
