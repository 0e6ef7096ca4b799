"""Analytic counters reproduce the V4-Flash figures of docs/model.md#flops-and-bytes."""

from kernels.flops import (
    AttnShape,
    attended_rows,
    indexer_flops,
    kv_bytes_per_token,
    layer_kinds,
    model_token_flops,
    token_flops,
)

FLASH = [0, 0] + [4, 128] * 20 + [4] + [0]          # compress_ratios incl. the MTP entry (44)
M = 2 ** 20


def test_flash_decode_at_1m():
    kinds = layer_kinds(FLASH)
    assert (kinds.count("csa"), kinds.count("hca"), kinds.count("swa")) == (21, 20, 3)
    assert abs(model_token_flops(kinds, M) / 1e9 - 114.9) < 0.05                 # attention total 114.9 GF
    assert abs(21 * indexer_flops(M) / 1e9 - 91.3) < 0.05                        # of which indexer 91.3 GF


def test_flash_kv_bytes_per_token():
    kinds = layer_kinds(FLASH)
    assert sum(kv_bytes_per_token(k) for k in kinds) == 6880                      # bf16 rows, B/token


def test_short_contexts_and_dense():
    s = AttnShape(window=8, index_topk=4, csa_ratio=4, hca_ratio=16)
    assert attended_rows("csa", 5, s) == 5 + 1 and attended_rows("csa", 100, s) == 8 + 4
    assert attended_rows("hca", 100, s) == 8 + 6 and attended_rows("swa", 3, s) == 3
    assert token_flops("dense", 1000) == 4 * 64 * 512 * 1000
