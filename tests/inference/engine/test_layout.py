"""Cache bytes per token from config.json alone, against docs/cache-layout.md#sizes, and the pools' allocated sizes."""

from pathlib import Path

import pytest

from inference.engine.layout import CacheLayout, bytes_per_token
from inference.engine.pools import plan_pools
from inference.errors import ConfigError
from tests.inference.engine.engine_helpers import make_engine

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize("name, dtype, doc", [("v4_flash_config.json", "bfloat16", 6880),
                                              ("v4_flash_config.json", "fp8", 3850),
                                              ("v4_pro_config.json", "bfloat16", 9848),
                                              ("v4_pro_config.json", "fp8", 5511)])
def test_bytes_per_token_matches_v4_model_doc(name, dtype, doc):
    got = bytes_per_token(str(FIXTURES / name), dtype)["history_bytes_per_token"]
    assert abs(got - doc) / doc < 0.05


def test_flash_constant_costs():
    r = bytes_per_token(str(FIXTURES / "v4_flash_config.json"), "bfloat16")
    assert r["window_bytes_per_seq"] == 43 * 128 * 512 * 2  # 43 layers × 128 raw rows × 512 × bf16 (≈5.5 MiB)
    assert r["checkpoint_bytes"] > r["window_bytes_per_seq"]


def test_pools_allocate_what_the_layout_says(model):
    eng = make_engine(model)
    # per 128-token block: two CSA layers (32 rows × (64 + 32) fp32) + one HCA layer (8 rows × 64 fp32)
    block = 2 * 32 * (64 + 32) * 4 + 8 * 64 * 4
    assert eng.layout.history_block_bytes == block and eng.layout.bytes_per_token == block / 128
    slots = eng.pools.num_slots
    assert slots == 16 + 8
    assert eng.stats().cache_bytes == eng.blocks.num_blocks * block + slots * 4 * 128 * 64 * 4
    assert eng.stats().cache_bytes <= 32 << 20


def test_budget_too_small_and_bad_dtype_are_config_errors(model):
    layout = CacheLayout(model.args)
    with pytest.raises(ConfigError, match="too small"):
        plan_pools(layout, 1 << 20, 100)
    with pytest.raises(ConfigError, match="dtype"):
        CacheLayout(model.args, "int4")
