"""A few tiny CPU loops in C, for the places where a decode step would otherwise pay torch's per-op dispatch many
times over on a handful of numbers (docs/cpu-profile.md, "decode").

`sinkhorn_` runs the Sinkhorn normalizations of the mHC split (kernels.mhc.hc_split_sinkhorn_torch) on a
tokens-last comb [hc, hc, T] in place: 2·iters - 1 normalizations, each a sum over one axis, + eps, a division.
In torch that is 3·(2·iters - 1) ≈ 117 ops a call whatever T is (≈ 150–400 µs at T = 1 on this 2-core CPU, 8 calls a
decode step); in C it is a few µs. The arithmetic is the torch loop's, operation for operation: sums accumulate
sequentially over the reduced axis (the order torch's CPU sum uses for these shapes; tests/kernels/test_mhc.py
checks bit equality), then + eps, then one IEEE division per element; compiled without fast-math or FP contraction.

The library is compiled once with the system C compiler (`cc`, or $CC) into a cache folder
($XDG_CACHE_HOME or ~/.cache, /wholedoc-kernels, keyed by a hash of the source), about 0.1–0.3 s the first time in
a machine's life. Without a compiler, or if the build fails, `available()` is False and callers keep the torch loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

_SOURCE = r"""
#include <stdlib.h>

/* c: [hc, hc, T] fp32, contiguous; c[j][k][t]. The torch twin:
 *   c /= c.sum(0, keepdim) + eps;  then (iters-1) x { c /= c.sum(1, keepdim) + eps;  c /= c.sum(0, keepdim) + eps } */
int wholedoc_sinkhorn(float *c, long hc, long T, long iters, float eps) {
    float *s = (float *)malloc(sizeof(float) * (size_t)(hc * T));
    if (!s) return 1;
    const long kstride = T, jstride = hc * T;
    for (long it = 0; it < iters; ++it) {
        for (long j = 0; it > 0 && j < hc; ++j) {           /* sums over k (dim 1) -> s[j][t] */
            float *row = c + j * jstride, *sj = s + j * T;
            for (long t = 0; t < T; ++t) sj[t] = row[t];
            for (long k = 1; k < hc; ++k)
                for (long t = 0; t < T; ++t) sj[t] = sj[t] + row[k * kstride + t];
            for (long t = 0; t < T; ++t) sj[t] = sj[t] + eps;
            for (long k = 0; k < hc; ++k)
                for (long t = 0; t < T; ++t) row[k * kstride + t] = row[k * kstride + t] / sj[t];
        }
        for (long k = 0; k < hc; ++k) {           /* sums over j (dim 0) -> s[k][t] */
            float *sk = s + k * T;
            for (long t = 0; t < T; ++t) sk[t] = c[k * kstride + t];
            for (long j = 1; j < hc; ++j)
                for (long t = 0; t < T; ++t) sk[t] = sk[t] + c[j * jstride + k * kstride + t];
            for (long t = 0; t < T; ++t) sk[t] = sk[t] + eps;
        }
        for (long j = 0; j < hc; ++j)
            for (long k = 0; k < hc; ++k) {
                float *p = c + j * jstride + k * kstride, *sk = s + k * T;
                for (long t = 0; t < T; ++t) p[t] = p[t] / sk[t];
            }
    }
    free(s);
    return 0;
}
"""
_FLAGS = ["-O2", "-fPIC", "-shared", "-fno-fast-math", "-ffp-contract=off", "-fno-unsafe-math-optimizations"]
_lib: ctypes.CDLL | None = None
_tried = False


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "wholedoc-kernels"


def _build() -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    key = hashlib.sha256((_SOURCE + " ".join(_FLAGS) + cc).encode()).hexdigest()[:16]
    out = _cache_dir() / f"cpu_native_{key}.so"
    try:
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                src, so = Path(tmp) / "cpu_native.c", Path(tmp) / "cpu_native.so"
                src.write_text(_SOURCE)
                subprocess.run([cc, *_FLAGS, str(src), "-o", str(so)], check=True, capture_output=True, timeout=60)
                os.replace(so, out)  # atomic: concurrent builders each write their own temp file
        lib = ctypes.CDLL(str(out))
    except (OSError, subprocess.SubprocessError):
        return None
    fn = lib.wholedoc_sinkhorn
    fn.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_float]
    fn.restype = ctypes.c_int
    return lib


def available() -> bool:
    """True once the C library is built and loaded (built on the first call)."""
    global _lib, _tried
    if not _tried:
        _tried = True
        _lib = _build()
    return _lib is not None


def sinkhorn_(comb: torch.Tensor, iters: int, eps: float) -> bool:
    """In place on comb [hc, hc, T] (CPU, fp32, contiguous, hc ≤ 4): a column normalization, then iters-1 (row,
    column) normalizations. Returns False (comb untouched) when the library is unavailable or comb does not qualify
    (for hc > 4 torch's sums no longer add in sequence); the caller then runs the torch loop."""
    if not (comb.device.type == "cpu" and comb.dtype == torch.float32 and comb.dim() == 3 and comb.is_contiguous()
            and comb.shape[0] == comb.shape[1] <= 4 and iters >= 1 and not comb.requires_grad and available()):
        return False
    if _lib.wholedoc_sinkhorn(comb.data_ptr(), comb.shape[0], comb.shape[2], iters, eps) != 0:
        raise MemoryError("cpu_native: sinkhorn scratch allocation failed")
    return True
