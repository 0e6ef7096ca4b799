"""wholedoc: workers."""
