"""wholedoc: api."""
