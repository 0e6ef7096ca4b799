"""A few CPU loops in C, for the places of a decode step where torch pays per-op dispatch many times over on a
handful of numbers, or where MKL's path for a few rows is slow (docs/cpu-profile.md, "decode").

`sinkhorn_` runs the Sinkhorn normalizations of the mHC split (kernels.mhc.hc_split_sinkhorn_torch) on a
tokens-last comb [hc, hc, T] in place: 2·iters - 1 normalizations, each a sum over one axis, + eps, a division.
In torch that is 3·(2·iters - 1) ≈ 117 ops a call whatever T is (≈ 150–400 µs at T = 1 on this 2-core CPU, 8 calls a
decode step); in C it is a few µs. The arithmetic is the torch loop's, operation for operation: sums accumulate
sequentially over the reduced axis (the order torch's CPU sum uses for these shapes; tests/kernels/test_mhc.py
checks bit equality), then + eps, then one IEEE division per element; compiled without fast-math or FP contraction.

`linear_colmajor` is the output head of a decode step: y = x·Wᵀ for the few rows x of a step against a [vocab,
hidden] fp32 weight stored column-major (a transposed view of a contiguous [hidden, vocab] tensor, the CPU layout
inference.checkpoint.loader.head_layout_ gives the head). MKL is slow for a few rows against such a wide weight
(16 rows of the small model's 132 MB head: ≈ 21 ms on 2 threads, 50 GFLOP/s; one row at memory speed); this GEMM
reads the weight in place, 64 vocab columns × 16 hidden rows at a time with 4 rows of x in registers (AVX-512,
compiled for this CPU; on a CPU without it the library is not used and MKL runs), split over torch's thread count
(at most 16, one thread for small products) with pthreads started per call.
Every logit is one sequential fused multiply-add chain over the hidden dimension, so a row's logits do not depend on
the other rows of the call (a request's logits are the same decoding alone or in a batch).

Each library is compiled once with the system C compiler (`cc`, or $CC) into a cache folder ($XDG_CACHE_HOME or
~/.cache, /wholedoc-kernels, keyed by a hash of the source, the flags, the compiler and, for the GEMM built with
-march=native, the CPU), about 0.1–0.5 s the first time in a machine's life. Without a compiler, or if the build
fails, `available()` is False and callers keep the torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

_SINKHORN_SOURCE = r"""
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
_SINKHORN_FLAGS = ["-O2", "-fPIC", "-shared", "-fno-fast-math", "-ffp-contract=off", "-fno-unsafe-math-optimizations"]

_GEMM_SOURCE = r"""
#include <pthread.h>
#include <stdlib.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* y[M, N] = x[M, K] @ w[K, N] (w's rows ldw floats apart). Every y element is one chain of fused multiply-adds
 * over k = 0..K-1 in order, whatever M is: a row's result does not depend on the other rows.
 * Loop nest per thread: column chunks of NCB / M columns (their y stays in L2), hidden rows in steps of KB (only
 * KB rows of w are streamed at once, which the prefetchers follow), 64-column tiles, 4 rows of x at a time in
 * registers; a tile carries its partial sums through y between the steps of KB. Tuned on a 2-core Zen 4
 * (K = 256): KB 16 and a prefetch 128 floats ahead along the row beat 32/64 and 256/512. */
#define NB 64
#define KB 16
#define NCB 65536
#define PF 128

#ifdef __AVX512F__
/* y[0:mr, 0:64] (+)= x[0:mr, k0:k1] @ w[k0:k1, 0:64]: starts from zero at k0 = 0, else from y's partial sums */
static inline void tile(const float *x, long K, const float *w, long ldw, float *y, long ldy, int mr,
                        long k0, long k1) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            acc[i][j] = (k0 == 0 || i >= mr) ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i * ldy + 16 * j);
    for (long k = k0; k < k1; ++k) {
        const float *wk = w + k * ldw;
        const char *p = (const char *)(wk + PF);
        _mm_prefetch(p, _MM_HINT_T0); _mm_prefetch(p + 64, _MM_HINT_T0);
        _mm_prefetch(p + 128, _MM_HINT_T0); _mm_prefetch(p + 192, _MM_HINT_T0);
        __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16);
        __m512 w2 = _mm512_loadu_ps(wk + 32), w3 = _mm512_loadu_ps(wk + 48);
        for (int i = 0; i < mr; ++i) {
            __m512 xi = _mm512_set1_ps(x[i * K + k]);
            acc[i][0] = _mm512_fmadd_ps(xi, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(xi, w1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(xi, w2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(xi, w3, acc[i][3]);
        }
    }
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < 4; ++j) _mm512_storeu_ps(y + i * ldy + 16 * j, acc[i][j]);
}
#endif

/* the last, narrower tile (N not a multiple of 64) or no AVX-512: whole K at once */
static void tile_scalar(const float *x, long K, const float *w, long ldw, float *y, long ldy, long mr, long nb) {
    for (long i = 0; i < mr; ++i)
        for (long j = 0; j < nb; ++j) {
            float a = 0.0f;
            for (long k = 0; k < K; ++k) a = __builtin_fmaf(x[i * K + k], w[k * ldw + j], a);
            y[i * ldy + j] = a;
        }
}

typedef struct { const float *x, *w; float *y; long M, K, N, ldw, n0, n1; } job_t;

static void *run(void *arg) {
    job_t *j = (job_t *)arg;
    long nc = (NCB / (j->M < 1 ? 1 : j->M)) / NB * NB;
    if (nc < NB) nc = NB;
    for (long c = j->n0; c < j->n1; c += nc) {
        long c1 = c + nc < j->n1 ? c + nc : j->n1;
        for (long k0 = 0; k0 < j->K; k0 += KB) {
            long k1 = k0 + KB < j->K ? k0 + KB : j->K;
            for (long n = c; n < c1; n += NB) {
                long nb = c1 - n < NB ? c1 - n : NB;
                for (long m = 0; m < j->M; m += 4) {
                    long mr = j->M - m < 4 ? j->M - m : 4;
                    const float *x = j->x + m * j->K;
                    float *y = j->y + m * j->N + n;
#ifdef __AVX512F__
                    if (nb == NB) {
                        switch (mr) {
                            case 4: tile(x, j->K, j->w + n, j->ldw, y, j->N, 4, k0, k1); break;
                            case 3: tile(x, j->K, j->w + n, j->ldw, y, j->N, 3, k0, k1); break;
                            case 2: tile(x, j->K, j->w + n, j->ldw, y, j->N, 2, k0, k1); break;
                            default: tile(x, j->K, j->w + n, j->ldw, y, j->N, 1, k0, k1); break;
                        }
                        continue;
                    }
#endif
                    if (k0 == 0) tile_scalar(x, j->K, j->w + n, j->ldw, y, j->N, mr, nb);
                }
            }
        }
    }
    return NULL;
}

/* 1 when the AVX-512 tiles are compiled in: without them the scalar loop would be slower than MKL, so the
 * library is not used */
int wholedoc_gemm_vectorized(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}

int wholedoc_head_gemm(const float *x, const float *w, float *y, long M, long K, long N, long ldw, long threads) {
    if (threads < 1 || M * K * N < (1L << 24)) threads = 1;  /* a small product: starting threads costs more */
    if (threads > 16) threads = 16;  /* started per call: more would cost more than the memory bandwidth gives */
    long blocks = (N + NB - 1) / NB;
    if (threads > blocks) threads = blocks;
    job_t jobs[16];
    pthread_t tid[16];
    for (long t = 0; t < threads; ++t) {
        long b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
        jobs[t] = (job_t){x, w, y, M, K, N, ldw, b0 * NB, b1 * NB < N ? b1 * NB : N};
    }
    long started = 1;
    for (long t = 1; t < threads; ++t, ++started)
        if (pthread_create(&tid[t], NULL, run, &jobs[t]) != 0) break;
    run(&jobs[0]);
    for (long t = started; t < threads; ++t) run(&jobs[t]);  /* threads that could not start: run here */
    for (long t = 1; t < started; ++t) pthread_join(tid[t], NULL);
    return 0;
}
"""
# compiled for this CPU (-march=native), threaded: the GEMM here and the loops of build_vectorized
NATIVE_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-pthread", "-fno-fast-math"]

# Prepended to the sources of the threaded C loops (kernels.cpu_indexer, kernels.cpu_attention): the job array runs
# on n threads, this one and n - 1 pthreads (a job whose thread cannot start runs here after this thread's own).
THREADS_C = r"""
#include <pthread.h>
#include <stddef.h>

#define MAX_THREADS 16

static long clamp_threads(long threads, long work_items) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > work_items) threads = work_items;
    return threads < 1 ? 1 : threads;
}

static void run_threads(void *(*fn)(void *), void *jobs, size_t job_size, long n) {
    pthread_t tid[MAX_THREADS];
    long started = 1;
    for (long t = 1; t < n; ++t, ++started)
        if (pthread_create(&tid[t], NULL, fn, (char *)jobs + t * job_size) != 0) break;
    fn(jobs);
    for (long t = started; t < n; ++t) fn((char *)jobs + t * job_size);
    for (long t = 1; t < started; ++t) pthread_join(tid[t], NULL);
}
"""
GEMM_MAX_ROWS = 32  # beyond this MKL's packed GEMM is the faster one
_libs: dict[str, ctypes.CDLL | None] = {}


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "wholedoc-kernels"


def _cpu_id() -> str:
    """What -march=native compiles for: the machine and the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        info = ""
    return platform.machine() + "".join(line for line in info.splitlines()
                                        if line.startswith(("model name", "flags", "Features")))


def build(name: str, source: str, flags: list[str]) -> ctypes.CDLL | None:
    """`source` compiled with `flags` into the cache folder (once) and loaded; None without a compiler or if the
    build fails. The threaded loops of kernels.cpu_indexer and kernels.cpu_attention build through
    build_vectorized."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    native = "-march=native" in flags
    key = hashlib.sha256((source + " ".join(flags) + cc + (_cpu_id() if native else "")).encode()).hexdigest()[:16]
    out = _cache_dir() / f"cpu_native_{name}_{key}.so"
    try:
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                src, so = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
                src.write_text(source)
                subprocess.run([cc, *flags, str(src), "-o", str(so)], check=True, capture_output=True, timeout=60)
                os.replace(so, out)  # atomic: concurrent builders each write their own temp file
        return ctypes.CDLL(str(out))
    except (OSError, subprocess.SubprocessError):
        return None


def build_vectorized(name: str, source: str, probe: str, signatures: dict[str, list]) -> ctypes.CDLL | None:
    """A threaded AVX-512 library (THREADS_C prepended, compiled with NATIVE_FLAGS), its functions typed from
    `signatures` (argtypes; each returns int); None when it cannot be built or the `probe` function says AVX-512 was
    not compiled in (the torch paths are faster than its scalar fallbacks)."""
    lib = build(name, THREADS_C + source, NATIVE_FLAGS)
    if lib is None or not getattr(lib, probe)():
        return None
    for fn, argtypes in signatures.items():
        getattr(lib, fn).argtypes = argtypes
        getattr(lib, fn).restype = ctypes.c_int
    return lib


def _library(name: str) -> ctypes.CDLL | None:
    """The named library, built and typed on first use (None when it cannot be built)."""
    if name not in _libs:
        if name == "sinkhorn":
            lib = build(name, _SINKHORN_SOURCE, _SINKHORN_FLAGS)
            if lib is not None:
                lib.wholedoc_sinkhorn.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                                                  ctypes.c_float]
                lib.wholedoc_sinkhorn.restype = ctypes.c_int
        else:
            lib = build(name, _GEMM_SOURCE, NATIVE_FLAGS)
            if lib is not None and not lib.wholedoc_gemm_vectorized():
                lib = None  # no AVX-512 on this CPU: MKL is the faster path
            if lib is not None:
                lib.wholedoc_head_gemm.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 5
                lib.wholedoc_head_gemm.restype = ctypes.c_int
        _libs[name] = lib
    return _libs[name]


def available(name: str = "sinkhorn") -> bool:
    """True once the named C library ("sinkhorn" or "gemm") is built and loaded (built on the first call)."""
    return _library(name) is not None


def sinkhorn_(comb: torch.Tensor, iters: int, eps: float) -> bool:
    """In place on comb [hc, hc, T] (CPU, fp32, contiguous, hc ≤ 4): a column normalization, then iters-1 (row,
    column) normalizations. Returns False (comb untouched) when the library is unavailable or comb does not qualify
    (for hc > 4 torch's sums no longer add in sequence); the caller then runs the torch loop."""
    if not (comb.device.type == "cpu" and comb.dtype == torch.float32 and comb.dim() == 3 and comb.is_contiguous()
            and comb.shape[0] == comb.shape[1] <= 4 and iters >= 1 and not comb.requires_grad and available()):
        return False
    if _library("sinkhorn").wholedoc_sinkhorn(comb.data_ptr(), comb.shape[0], comb.shape[2], iters, eps) != 0:
        raise MemoryError("cpu_native: sinkhorn scratch allocation failed")
    return True


def linear_colmajor(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] · weight [N, K]ᵀ -> [..., N] by the C GEMM, for CPU fp32 with weight column-major (weight.t()
    contiguous) and at most GEMM_MAX_ROWS rows of x; None when that does not hold or the library is unavailable (the
    caller then runs F.linear)."""
    k = x.shape[-1] if x.dim() else 0
    rows = x.numel() // k if k else 0
    if not (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and weight.dim() == 2
            and weight.shape[1] == k and 0 < rows <= GEMM_MAX_ROWS and weight.t().is_contiguous()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)) and available("gemm")):
        return None
    x2 = x.reshape(rows, k).contiguous()
    n = weight.shape[0]
    y = torch.empty(rows, n, dtype=torch.float32)
    _library("gemm").wholedoc_head_gemm(x2.data_ptr(), weight.data_ptr(), y.data_ptr(), rows, k, n, n,
                                        torch.get_num_threads())
    return y.view(*x.shape[:-1], n)
