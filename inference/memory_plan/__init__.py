"""Memory plans for deployments: the release's tensor table (`tensors`), per-rank sizing (`sizing`); the command line
is `python -m inference.plan` (docs/memory-plan.md)."""
