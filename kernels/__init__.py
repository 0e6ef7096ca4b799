"""wholedoc: kernels."""
