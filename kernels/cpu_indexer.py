"""The lightning indexer's prefill on CPU as one C loop: scores, ReLU, head-weighted sum and top-k, fused.

For the queries of one sequence (a prefill chunk), against the compressed keys they can see:
score(t, s) = Σ_h w[t, h]·ReLU(q[t, h]·k[s]) for s < nvis[t], then the indices of the `topk` largest.
In torch (kernels.indexer.indexer_topk_torch) that is a GEMM with an inner dimension of DI = 64 (small model) or
128, a ReLU and a batched matmul for the head sum over a [T, HI, N] buffer, then `topk`, which costs 7–12 ns a
score; together ≈ 42 GFLOP/s on this machine's two cores, the largest item of a 128K prefill
(docs/cpu-profile.md). Here:

- The keys are packed once per call as groups of 32 keys, transposed: [G, DI, 32]. A query's 32 scores of a group
  are 2 × HI accumulators of 16 lanes (8 heads at a time), one broadcast of q[h, d] and two loads of keys per d: the
  FMA units stay busy (the GEMM is at its peak rate), and the ReLU and the weighted head sum run on the registers.
  Groups go outer and a tile of 8 queries inner, so a group's keys are read from L1 by all 8.
- Top-k of a row of n scores: the scores as int32 keys in the same order, the exact k-th largest key τ by bisection
  on the key range, each step counting the keys ≥ the midpoint 16 at a time (≤ 32 passes over a row that is in
  L1/L2, with no branch that depends on a score: a quickselect's mispredictions cost ≈ 14 ns a score here, more than
  the scores themselves at 8K); the picks are the indices with key > τ, then those = τ, each in ascending index
  order (so the result is deterministic; torch's tie order is unspecified).
- Threads: pthreads (torch's thread count) take tiles of 8 queries from a shared counter, so uneven rows (a query
  late in the chunk sees more keys) and a busy core balance themselves.
- Decode (`topk_paged`: queries each alone in their sequence) reads the keys in place through the block table, the
  heads as the 8 lanes of a 256-bit vector, 8 keys at a time, then the same top-k.

The sums run in another order than torch's GEMM (one FMA chain over d per head, then the heads in order), so scores
differ from the torch path by rounding (≈ 1e-6 relative) and a near-tie at the k-th place can pick the other row.
Compiled for this CPU (-march=native) and used only when AVX-512 is compiled in; otherwise `None` and the caller
runs the torch path.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from . import cpu_native
from .errors import check

_SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define KG 32  /* keys a packed group holds: two vectors of 16 */
#define QT 8   /* queries a tile holds: a group's keys are read by all of them while in L1 */

#ifdef __AVX512F__
/* s0, s1 (+)= Σ_{h < hb} w[h]·ReLU(q[h]·k[g]) for the 32 keys of the group kg ([DI][32]) */
static inline __attribute__((always_inline)) void heads(const float *q, const float *w, const float *kg, long DI,
                                                        const int hb, __m512 *s0, __m512 *s1) {
    __m512 a0[8], a1[8];
    for (int h = 0; h < hb; ++h) { a0[h] = _mm512_setzero_ps(); a1[h] = _mm512_setzero_ps(); }
    for (long d = 0; d < DI; ++d) {
        __m512 k0 = _mm512_loadu_ps(kg + d * KG), k1 = _mm512_loadu_ps(kg + d * KG + 16);
        for (int h = 0; h < hb; ++h) {
            __m512 qb = _mm512_set1_ps(q[h * DI + d]);
            a0[h] = _mm512_fmadd_ps(qb, k0, a0[h]);
            a1[h] = _mm512_fmadd_ps(qb, k1, a1[h]);
        }
    }
    __m512 z = _mm512_setzero_ps();
    for (int h = 0; h < hb; ++h) {
        __m512 wh = _mm512_set1_ps(w[h]);
        *s0 = _mm512_fmadd_ps(wh, _mm512_max_ps(a0[h], z), *s0);
        *s1 = _mm512_fmadd_ps(wh, _mm512_max_ps(a1[h], z), *s1);
    }
}

/* out[0:32] = the query's scores against the group kg */
static void group_scores(const float *q, const float *w, const float *kg, long HI, long DI, float *out) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    long h = 0;
    for (; h + 8 <= HI; h += 8) heads(q + h * DI, w + h, kg, DI, 8, &s0, &s1);
    switch (HI - h) {
        case 7: heads(q + h * DI, w + h, kg, DI, 7, &s0, &s1); break;
        case 6: heads(q + h * DI, w + h, kg, DI, 6, &s0, &s1); break;
        case 5: heads(q + h * DI, w + h, kg, DI, 5, &s0, &s1); break;
        case 4: heads(q + h * DI, w + h, kg, DI, 4, &s0, &s1); break;
        case 3: heads(q + h * DI, w + h, kg, DI, 3, &s0, &s1); break;
        case 2: heads(q + h * DI, w + h, kg, DI, 2, &s0, &s1); break;
        case 1: heads(q + h * DI, w + h, kg, DI, 1, &s0, &s1); break;
        default: break;
    }
    _mm512_storeu_ps(out, s0);
    _mm512_storeu_ps(out + 16, s1);
}
#endif

/* Scores as int32 keys in the same order (x + 0 first, so -0 and +0 are one key; NaN ranks highest, as in
 * torch.topk): the sign bit set flips the other bits. */
static void to_keys(const float *s, long n, int *key) {
    long i = 0;
#ifdef __AVX512F__
    const __m512 z = _mm512_setzero_ps();
    const __m512i m = _mm512_set1_epi32(0x7FFFFFFF);
    for (; i + 16 <= n; i += 16) {
        __m512i b = _mm512_castps_si512(_mm512_add_ps(_mm512_loadu_ps(s + i), z));
        _mm512_storeu_si512(key + i, _mm512_xor_si512(b, _mm512_and_si512(_mm512_srai_epi32(b, 31), m)));
    }
#endif
    for (; i < n; ++i) {
        float f = s[i] + 0.0f;
        int b;
        memcpy(&b, &f, sizeof b);
        key[i] = b ^ ((b >> 31) & 0x7FFFFFFF);
    }
}

/* how many keys are >= t: 16 compares and a popcount a step */
static long count_ge(const int *key, long n, int t) {
    long c = 0, i = 0;
#ifdef __AVX512F__
    const __m512i tv = _mm512_set1_epi32(t);
    for (; i + 16 <= n; i += 16)
        c += __builtin_popcount(_mm512_cmpge_epi32_mask(_mm512_loadu_si512(key + i), tv));
#endif
    for (; i < n; ++i) c += key[i] >= t;
    return c;
}

/* out[0:k) = indices of a top-k of s[0:n) (see the module docstring), -1 past n. The k-th largest key T by
 * bisection on the key range (count(key >= T) >= k > count(key >= T + 1)), each step one vectorized counting
 * pass; then the indices with key > T and the first with key = T, in ascending order. No data-dependent branches
 * per score (a quickselect's mispredictions cost ≈ 14 ns a score here). */
static void topk_row(const float *s, long n, long k, int *out, int *key) {
    if (n <= k) {
        for (long i = 0; i < k; ++i) out[i] = i < n ? (int)i : -1;
        return;
    }
    to_keys(s, n, key);
    int lo = key[0], hi = key[0];
    for (long i = 1; i < n; ++i) { lo = key[i] < lo ? key[i] : lo; hi = key[i] > hi ? key[i] : hi; }
    long a = lo, b = (long)hi + 1;                 /* count(>= a) = n >= k, count(>= b) = 0 < k */
    while (b - a > 1) {
        long mid = a + (b - a) / 2;
        if (count_ge(key, n, (int)mid) >= k) a = mid; else b = mid;
    }
    const int T = (int)a;
    long m = 0;
    for (long i = 0; i < n && m < k; ++i) if (key[i] > T) out[m++] = (int)i;
    for (long i = 0; i < n && m < k; ++i) if (key[i] == T) out[m++] = (int)i;
}

typedef struct {
    const float *q, *w, *kp;
    const long *nvis;
    long T, HI, DI, k, ld;
    int *out;
    long *next;
    int failed;
} job_t;

static void *work(void *arg) {
    job_t *j = (job_t *)arg;
#ifdef __AVX512F__
    float *sc = (float *)malloc(sizeof(float) * (size_t)(QT * j->ld));
    int *key = (int *)malloc(sizeof(int) * (size_t)j->ld);
    if (!sc || !key) {
        j->failed = 1;
    } else {
        for (;;) {
            long t0 = __atomic_fetch_add(j->next, QT, __ATOMIC_RELAXED);
            if (t0 >= j->T) break;
            long t1 = t0 + QT < j->T ? t0 + QT : j->T, nmax = 0;
            for (long t = t0; t < t1; ++t) nmax = j->nvis[t] > nmax ? j->nvis[t] : nmax;
            for (long g = 0; g * KG < nmax; ++g) {
                const float *kg = j->kp + g * j->DI * KG;
                for (long t = t0; t < t1; ++t)
                    if (g * KG < j->nvis[t])
                        group_scores(j->q + t * j->HI * j->DI, j->w + t * j->HI, kg, j->HI, j->DI,
                                     sc + (t - t0) * j->ld + g * KG);
            }
            for (long t = t0; t < t1; ++t)
                topk_row(sc + (t - t0) * j->ld, j->nvis[t], j->k, j->out + t * j->k, key);
        }
    }
    free(sc); free(key);
#else
    j->failed = 1;
#endif
    return NULL;
}

#ifdef __AVX512F__
/* sc[0:nv) = scores of one query against the first nv keys of a sequence, read in place from the pool [*][rpb][DI]
 * through its block-table row tab (decode: one query, no packing). The heads are the 8 lanes of a 256-bit vector
 * (idle lanes weigh 0); 8 keys at a time, each an FMA chain over DI, then ReLU, the weights, and the 8 lane sums
 * of the 8 keys by one horizontal-add tree. */
static int score_paged(const float *q, const float *w, const float *pool, const int *tab, long rpb, long nv,
                       long HI, long DI, long blocks, float *qt, float *sc) {
    for (long b = 0; b * rpb < nv; ++b)   /* every block the keys lie in: a bad table is an error, not a stray read */
        if (tab[b] < 0 || tab[b] >= blocks) return 4;
    for (long n = 0; n < nv; ++n) sc[n] = 0.0f;
    for (long h0 = 0; h0 < HI; h0 += 8) {
        const int hb = HI - h0 < 8 ? (int)(HI - h0) : 8;
        float w8[8] = {0};
        for (int i = 0; i < hb; ++i) w8[i] = w[h0 + i];
        for (long d = 0; d < DI; ++d)
            for (int i = 0; i < 8; ++i) qt[d * 8 + i] = i < hb ? q[(h0 + i) * DI + d] : 0.0f;
        const __m256 wv = _mm256_loadu_ps(w8), z = _mm256_setzero_ps();
        for (long n0 = 0; n0 < nv; n0 += 8) {
            const float *k[8];
            for (int i = 0; i < 8; ++i) {
                long r = n0 + i < nv ? n0 + i : 0;   /* past nv: any valid key, its score is dropped */
                k[i] = pool + ((long)tab[r / rpb] * rpb + r % rpb) * DI;
            }
            __m256 a[8];
            for (int i = 0; i < 8; ++i) a[i] = z;
            for (long d = 0; d < DI; ++d) {
                __m256 qd = _mm256_loadu_ps(qt + d * 8);
                for (int i = 0; i < 8; ++i) a[i] = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(k[i] + d), a[i]);
            }
            for (int i = 0; i < 8; ++i) a[i] = _mm256_mul_ps(_mm256_max_ps(a[i], z), wv);
            __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
            __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
            __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
            float s8[8];
            _mm256_storeu_ps(s8, sum);
            for (long i = 0; i < 8 && n0 + i < nv; ++i) sc[n0 + i] += s8[i];
        }
    }
    return 0;
}

typedef struct {
    const float *q, *w, *pool;
    const int *table, *seq;
    const long *nvis;
    long T, HI, DI, rpb, tstride, k, nmax, rows, blocks;
    int *out;
    long *next;
    int failed;
} paged_job_t;

static void *work_paged(void *arg) {
    paged_job_t *j = (paged_job_t *)arg;
    size_t n = (size_t)j->nmax;
    float *sc = (float *)malloc(sizeof(float) * n), *qt = (float *)malloc(sizeof(float) * (size_t)(j->DI * 8));
    int *key = (int *)malloc(sizeof(int) * n);
    if (!sc || !qt || !key) {
        j->failed = 1;
    } else {
        for (;;) {
            long t = __atomic_fetch_add(j->next, 1, __ATOMIC_RELAXED);
            if (t >= j->T) break;
            long s = j->seq[t], nv = j->nvis[t];
            if (s < 0 || s >= j->rows || (nv - 1) / j->rpb >= j->tstride ||
                score_paged(j->q + t * j->HI * j->DI, j->w + t * j->HI, j->pool, j->table + s * j->tstride, j->rpb,
                            nv, j->HI, j->DI, j->blocks, qt, sc)) {
                j->failed |= 4;
                continue;
            }
            topk_row(sc, nv, j->k, j->out + t * j->k, key);
        }
    }
    free(sc); free(qt); free(key);
    return NULL;
}
#endif

/* Queries each alone in its sequence (decode): q [T][HI][DI], w [T][HI], keys in pool [*][rpb][DI] through table
 * [*][tstride] at row seq[t] (table rows: rows; pool blocks: blocks), nvis [T] (each in [1, nmax]), out [T][k].
 * Returns 0; or 1 if scratch allocation failed, 4 if a key lies outside its table or pool (bits); 2 without
 * AVX-512. */
int wholedoc_indexer_topk_paged(const float *q, const float *w, const float *pool, const int *table, long tstride,
                                const int *seq, const long *nvis, long T, long HI, long DI, long rpb, long nmax,
                                long k, int *out, long rows, long blocks, long threads) {
#ifdef __AVX512F__
    long next = 0;
    threads = clamp_threads(threads, T);
    paged_job_t jobs[MAX_THREADS];
    for (long t = 0; t < threads; ++t)
        jobs[t] = (paged_job_t){q, w, pool, table, seq, nvis, T, HI, DI, rpb, tstride, k, nmax, rows, blocks, out,
                                &next, 0};
    run_threads(work_paged, jobs, sizeof(paged_job_t), threads);
    int failed = 0;
    for (long t = 0; t < threads; ++t) failed |= jobs[t].failed;
    return failed;
#else
    return 2;
#endif
}

int wholedoc_indexer_vectorized(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}

/* q [T][HI][DI], w [T][HI], kp [G][DI][32] (G·32 >= every nvis), nvis [T] (each >= 1), out [T][k].
 * Returns 0, or 1 if a scratch allocation failed. */
int wholedoc_indexer_topk(const float *q, const float *w, const float *kp, const long *nvis, long T, long HI,
                          long DI, long G, long k, int *out, long threads) {
    long next = 0;
    threads = clamp_threads(threads, (T + QT - 1) / QT);
    job_t jobs[MAX_THREADS];
    for (long t = 0; t < threads; ++t) jobs[t] = (job_t){q, w, kp, nvis, T, HI, DI, k, G * KG, out, &next, 0};
    run_threads(work, jobs, sizeof(job_t), threads);
    int failed = 0;
    for (long t = 0; t < threads; ++t) failed |= jobs[t].failed;
    return failed;
}
"""
KEY_GROUP = 32
_P, _N = ctypes.c_void_p, ctypes.c_long
_SIGNATURES = {"wholedoc_indexer_topk": [_P, _P, _P, _P, _N, _N, _N, _N, _N, _P, _N],
               "wholedoc_indexer_topk_paged": [_P, _P, _P, _P, _N, _P, _P, _N, _N, _N, _N, _N, _N, _P, _N, _N, _N]}
_lib: list[ctypes.CDLL | None] = []


def _library() -> ctypes.CDLL | None:
    if not _lib:
        _lib.append(cpu_native.build_vectorized("indexer", _SOURCE, "wholedoc_indexer_vectorized", _SIGNATURES))
    return _lib[0]


def available() -> bool:
    """True once the C indexer is built and loaded (built on the first call); False without a compiler or AVX-512."""
    return _library() is not None


def pack_keys(keys: torch.Tensor) -> torch.Tensor:
    """keys [N, DI] -> [G, DI, 32] fp32 (G = ⌈N/32⌉, zero rows past N): the layout `topk_packed` reads."""
    n, di = keys.shape
    g = -(-n // KEY_GROUP)
    return F.pad(keys.float(), (0, 0, 0, g * KEY_GROUP - n)).view(g, KEY_GROUP, di).transpose(1, 2).contiguous()


def topk(q: torch.Tensor, weights: torch.Tensor, keys: torch.Tensor, nvis: torch.Tensor, k: int) -> torch.Tensor | None:
    """int32 [T, k]: for each query t (q [T, HI, DI], weights [T, HI]) the indices of the k largest of
    Σ_h weights[t, h]·ReLU(q[t, h]·keys[s]) over s < nvis[t] (keys [N, DI], N ≥ max nvis ≥ 1), −1 past nvis[t].
    None when the C path does not apply (not CPU fp32, grad, or the library is unavailable): run the torch path."""
    if not (q.device.type == "cpu" and q.dtype == torch.float32 and q.dim() == 3 and keys.dim() == 2
            and keys.shape[1] == q.shape[2] and weights.shape == q.shape[:2] and nvis.shape == q.shape[:1]
            and q.shape[0] > 0 and k > 0 and not (torch.is_grad_enabled() and q.requires_grad) and available()):
        return None
    nv = nvis.to(torch.long).contiguous()
    if int(nv.min()) < 1 or int(nv.max()) > keys.shape[0]:
        raise ValueError(f"cpu_indexer.topk: nvis must lie in [1, {keys.shape[0]}]")
    qc, wc = q.contiguous(), weights.float().contiguous()
    kp = pack_keys(keys)
    out = torch.empty(q.shape[0], k, dtype=torch.int32)
    if _library().wholedoc_indexer_topk(qc.data_ptr(), wc.data_ptr(), kp.data_ptr(), nv.data_ptr(), q.shape[0],
                                        q.shape[1], q.shape[2], kp.shape[0], k, out.data_ptr(),
                                        torch.get_num_threads()) != 0:
        raise MemoryError("cpu_indexer: scratch allocation failed")
    return out


def topk_paged(q: torch.Tensor, weights: torch.Tensor, key_pool: torch.Tensor, key_table: torch.Tensor,
               seq_ids: torch.Tensor, nvis: torch.Tensor, k: int) -> torch.Tensor | None:
    """`topk` for queries that are each alone in their sequence (decode), the keys read in place from the paged pool
    (key_pool [nb, rpb, DI] + key_table int32 [B, nblk], the query's row seq_ids[t]); nvis[t] ≥ 1 keys each. None
    when the C path does not apply."""
    if not (q.device.type == "cpu" and q.dtype == key_pool.dtype == torch.float32 and q.dim() == 3
            and key_pool.dim() == 3 and key_pool.shape[2] == q.shape[2] and weights.shape == q.shape[:2]
            and nvis.shape == seq_ids.shape == q.shape[:1] and q.shape[0] > 0 and k > 0
            and not (torch.is_grad_enabled() and q.requires_grad) and available()):
        return None
    nv = nvis.to(torch.long).contiguous()
    if int(nv.min()) < 1:
        raise ValueError("cpu_indexer.topk_paged: every query must see at least one key")
    qc, wc, pool = q.contiguous(), weights.float().contiguous(), key_pool.contiguous()
    tab, seq = key_table.to(torch.int32).contiguous(), seq_ids.to(torch.int32).contiguous()
    out = torch.empty(q.shape[0], k, dtype=torch.int32)
    rc = _library().wholedoc_indexer_topk_paged(qc.data_ptr(), wc.data_ptr(), pool.data_ptr(), tab.data_ptr(),
                                                tab.shape[1], seq.data_ptr(), nv.data_ptr(), q.shape[0], q.shape[1],
                                                q.shape[2], pool.shape[1], int(nv.max()), k, out.data_ptr(),
                                                tab.shape[0], pool.shape[0], torch.get_num_threads())
    check(not rc & 4, "indexer: a decode query's keys lie outside its block table or pool (visible keys "
          f"{int(nv.min())}..{int(nv.max())}, table {tuple(tab.shape)}, pool {tuple(pool.shape)})")
    if rc & 1:
        raise MemoryError("cpu_indexer: scratch allocation failed")
    return out
