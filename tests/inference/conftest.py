"""Small fp32 DeepSeek-V4 configs and random-weight checkpoints for the model tests."""

import pytest

from inference.checkpoint.dev import write_checkpoint


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """Write (once per config) a random checkpoint with devcheckpoint and return its directory."""
    made = {}

    def make(config: dict, seed: int = 0):
        key = (repr(sorted(config.items())), seed)
        if key not in made:
            made[key] = write_checkpoint(tmp_path_factory.mktemp("ckpt"), config, seed)
        return made[key]

    return make
