"""Checkpoints: sharded safetensors in the official or HF naming, the FP8/FP4 release formats, development presets,
and the one loader of a model from a checkpoint folder."""
