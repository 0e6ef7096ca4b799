"""wholedoc: pipeline."""
