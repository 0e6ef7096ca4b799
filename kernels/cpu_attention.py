"""V4's sparse attention on CPU as one C loop over queries: each query reads its own rows in place from the pools.

For query t at position p: o_h = Σ_j softmax_j(scale·q_h·k_j | sink_h) k_j over its rows j (K = V): the raw window
rows p−window+1..p and the compressed rows (a CSA query's picks, an HCA query's visible rows), each found through
its block table and read where it lies in the pool. The torch path (kernels.sparse_attn.sparse_attn_torch) gathers
rows and runs torch's fused attention over query chunks, paying for a chunk's window band and the union of its
picks (up to 6·k rows for every query) and for the gathers, masks and index tensors; here each query touches
exactly its own rows and no index tensor is built (docs/cpu-profile.md).

Per query and group of 8 heads (the heads are the 8 lanes of a 256-bit vector, so no horizontal sums):

- scores: the scaled q, transposed to [D][8], times each row's elements broadcast, 8 rows at a time (8 independent
  FMA chains over D);
- softmax with the sink in the denominator: max over the rows and the sink logit, exp (Cephes' expf polynomial,
  within 2 ulp of libm's), sum, one reciprocal;
- output: 16 elements of D at a time in 16 accumulators, each row's probabilities (one vector of 8 heads) times its
  elements broadcast; then scaled by the reciprocal and transposed back to [H][D].

Two 256-bit FMAs a cycle is this CPU's (Zen 4) full fp32 rate, the same as one 512-bit. Threads: pthreads (torch's
thread count) take queries from a shared counter (a last group of fewer than 8 heads leaves lanes idle). Used for
fp32 with D a multiple of 16 when AVX-512 is compiled in (-march=native); otherwise `attend` returns None and the
caller runs the torch path. Sums run in another order than torch's, so outputs differ by rounding (≈ 1e-7
relative; more where logits are large, as in any fp32 softmax).
"""

from __future__ import annotations

import ctypes

import torch

from . import cpu_native
from .layout import BLOCK_TOKENS, rows_per_block

_SOURCE = r"""
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>

#define BT @BLOCK_TOKENS@  /* tokens a window block holds (kernels.layout.BLOCK_TOKENS) */

/* e^x for 8 floats (x <= 0 here), Cephes' expf: x = n ln2 + r, e^r by a degree-5 polynomial, times 2^n */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-104.0f));   /* e^-104 is 0 in fp32; keeps -inf from making NaN */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    return _mm256_scalef_ps(y, n);
}

typedef struct {
    const float *q, *A, *B, *sink;
    const long *pos;
    const int *seq, *wt, *ct, *picks;
    float *out;
    long T, H, D, window, wt_stride, ratio, rpb, ct_stride, K, WB;
    float scale;
    long *next;
    int failed;
} job_t;

typedef struct { const float **rp; float *s, *qt, *ot, *zero; } scratch_t;

static void attend_one(const job_t *j, long t, scratch_t *w) {
    const long D = j->D;
    /* the query's rows, in place: window rows p-window+1..p through the window block table, then the compressed
     * rows (its picks, or every visible row) through the compressed block table; rows not yet written are skipped */
    long R = 0, p = j->pos[t];
    const int *wt = j->wt + (long)j->seq[t] * j->wt_stride;
    for (long r = p - j->window + 1 < 0 ? 0 : p - j->window + 1; r <= p; ++r)
        w->rp[R++] = j->A + ((long)wt[r / BT] * BT + r % BT) * D;
    if (j->ratio) {
        const long nv = (p + 1) / j->ratio, rpb = j->rpb;
        const int *ct = j->ct + (long)j->seq[t] * j->ct_stride;
        if (j->picks) {
            for (long i = 0; i < j->K; ++i) {
                long r = j->picks[t * j->K + i];
                if (r >= 0 && r < nv) w->rp[R++] = j->B + ((long)ct[r / rpb] * rpb + r % rpb) * D;
            }
        } else {
            for (long r = 0; r < nv && r < j->WB; ++r) w->rp[R++] = j->B + ((long)ct[r / rpb] * rpb + r % rpb) * D;
        }
    }
    long Rp = (R + 7) / 8 * 8;
    for (long r = R; r < Rp; ++r) w->rp[r] = w->zero;
    for (long h0 = 0; h0 < j->H; h0 += 8) {
        const float *qh = j->q + (t * j->H + h0) * D;
        const int hb = j->H - h0 < 8 ? (int)(j->H - h0) : 8;   /* heads in this group; idle lanes score 0 */
        float sk8[8] = {0};
        for (int i = 0; i < hb; ++i) sk8[i] = j->sink[h0 + i];
        for (long d = 0; d < D; ++d)
            for (int i = 0; i < 8; ++i) w->qt[d * 8 + i] = i < hb ? qh[i * D + d] * j->scale : 0.0f;
        /* scores [R][8 heads] */
        for (long r0 = 0; r0 < Rp; r0 += 8) {
            const float *p0 = w->rp[r0], *p1 = w->rp[r0 + 1], *p2 = w->rp[r0 + 2], *p3 = w->rp[r0 + 3];
            const float *p4 = w->rp[r0 + 4], *p5 = w->rp[r0 + 5], *p6 = w->rp[r0 + 6], *p7 = w->rp[r0 + 7];
            if (r0 + 8 < Rp)
                for (int i = 0; i < 8; ++i)
                    for (long d = 0; d < D; d += 16) _mm_prefetch((const char *)(w->rp[r0 + 8 + i] + d), _MM_HINT_T0);
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (long d = 0; d < D; ++d) {
                __m256 qd = _mm256_loadu_ps(w->qt + d * 8);
                a0 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p0 + d), a0);
                a1 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p1 + d), a1);
                a2 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p2 + d), a2);
                a3 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p3 + d), a3);
                a4 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p4 + d), a4);
                a5 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p5 + d), a5);
                a6 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p6 + d), a6);
                a7 = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(p7 + d), a7);
            }
            float *s = w->s + r0 * 8;
            _mm256_storeu_ps(s, a0); _mm256_storeu_ps(s + 8, a1); _mm256_storeu_ps(s + 16, a2);
            _mm256_storeu_ps(s + 24, a3); _mm256_storeu_ps(s + 32, a4); _mm256_storeu_ps(s + 40, a5);
            _mm256_storeu_ps(s + 48, a6); _mm256_storeu_ps(s + 56, a7);
        }
        /* softmax with the sink: p = e^(s - m) / (Σ e^(s - m) + e^(sink - m)), m = max(rows, sink) */
        __m256 sk = _mm256_loadu_ps(sk8), m = sk, l = _mm256_setzero_ps();
        for (long r = 0; r < R; ++r) m = _mm256_max_ps(m, _mm256_loadu_ps(w->s + r * 8));
        for (long r = 0; r < R; ++r) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(w->s + r * 8), m));
            _mm256_storeu_ps(w->s + r * 8, e);
            l = _mm256_add_ps(l, e);
        }
        l = _mm256_add_ps(l, exp8(_mm256_sub_ps(sk, m)));
        __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), l);
        /* o^T [D][8] = Σ_r p[r] ⊗ row_r, 16 elements of D at a time */
        for (long d0 = 0; d0 < D; d0 += 16) {
            __m256 c[16];
            for (int i = 0; i < 16; ++i) c[i] = _mm256_setzero_ps();
            for (long r = 0; r < R; ++r) {
                __m256 pr = _mm256_loadu_ps(w->s + r * 8);
                const float *row = w->rp[r] + d0;
                for (int i = 0; i < 16; ++i) c[i] = _mm256_fmadd_ps(pr, _mm256_broadcast_ss(row + i), c[i]);
            }
            for (int i = 0; i < 16; ++i) _mm256_storeu_ps(w->ot + (d0 + i) * 8, _mm256_mul_ps(c[i], inv));
        }
        float *oh = j->out + (t * j->H + h0) * D;
        for (int i = 0; i < hb; ++i)
            for (long d = 0; d < D; ++d) oh[i * D + d] = w->ot[d * 8 + i];
    }
}

static void *work(void *arg) {
    job_t *j = (job_t *)arg;
    long R = j->window + j->WB + 8;
    size_t f = sizeof(float);
    scratch_t w = {(const float **)malloc(sizeof(float *) * (size_t)R), (float *)malloc(f * (size_t)(R * 8)),
                   (float *)malloc(f * (size_t)(j->D * 8)), (float *)malloc(f * (size_t)(j->D * 8)),
                   (float *)calloc((size_t)j->D, f)};
    if (!w.rp || !w.s || !w.qt || !w.ot || !w.zero) {
        j->failed = 1;
    } else {
        for (;;) {
            long t = __atomic_fetch_add(j->next, 1, __ATOMIC_RELAXED);
            if (t >= j->T) break;
            attend_one(j, t, &w);
        }
    }
    free(w.rp); free(w.s); free(w.qt); free(w.ot); free(w.zero);
    return NULL;
}
#endif

int wholedoc_attention_vectorized(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}

/* q [T][H][D], positions pos [T] and block-table rows seq [T] of the queries; A: raw window rows [*][BT][D] with
 * wt [*][wt_stride]; B: compressed rows [*][rpb][D] with ct [*][ct_stride] (ratio 0: none); picks [T][K] (CSA) or
 * NULL (HCA: every visible row, at most WB of them; with picks WB = K); sink [H]; out [T][H][D]. D % 16 == 0.
 * Returns 0, 1 if scratch allocation failed, 2 if not compiled with AVX-512. */
int wholedoc_sparse_attention(const float *q, const long *pos, const int *seq, const float *A, const int *wt,
                              long wt_stride, long window, const float *B, const int *ct, long ct_stride, long ratio,
                              long rpb, const int *picks, long K, long WB, const float *sink, float scale, long T,
                              long H, long D, float *out, long threads) {
#ifdef __AVX512F__
    long next = 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    if (threads > T) threads = T;
    job_t jobs[16];
    pthread_t tid[16];
    for (long t = 0; t < threads; ++t)
        jobs[t] = (job_t){q, A, B, sink, pos, seq, wt, ct, picks, out, T, H, D, window, wt_stride, ratio, rpb,
                          ct_stride, K, WB, scale, &next, 0};
    long started = 1;
    for (long t = 1; t < threads; ++t, ++started)
        if (pthread_create(&tid[t], NULL, work, &jobs[t]) != 0) break;
    work(&jobs[0]);
    for (long t = 1; t < started; ++t) pthread_join(tid[t], NULL);
    int failed = 0;
    for (long t = 0; t < started; ++t) failed |= jobs[t].failed;
    return failed;
#else
    return 2;
#endif
}
"""
_SOURCE = _SOURCE.replace("@BLOCK_TOKENS@", str(BLOCK_TOKENS))
_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-pthread", "-fno-fast-math"]
_lib: list[ctypes.CDLL | None] = []


def _library() -> ctypes.CDLL | None:
    if not _lib:
        lib = cpu_native.build("attention", _SOURCE, _FLAGS)
        if lib is not None and not lib.wholedoc_attention_vectorized():
            lib = None  # no AVX-512: the torch path is the faster one
        if lib is not None:
            p, n = ctypes.c_void_p, ctypes.c_long
            lib.wholedoc_sparse_attention.argtypes = [p, p, p, p, p, n, n, p, p, n, n, n, p, n, n, p, ctypes.c_float,
                                                      n, n, n, p, n]
            lib.wholedoc_sparse_attention.restype = ctypes.c_int
        _lib.append(lib)
    return _lib[0]


def available() -> bool:
    """True once the C attention is built and loaded (built on the first call); False without a compiler or
    AVX-512."""
    return _library() is not None


def applies(q: torch.Tensor) -> bool:
    """Whether `attend` takes these queries [T, H, D]: CPU fp32, D a multiple of 16, no autograd."""
    return (q.device.type == "cpu" and q.dtype == torch.float32 and q.dim() == 3 and q.shape[1] > 0
            and q.shape[2] % 16 == 0 and not (torch.is_grad_enabled() and q.requires_grad) and available())


def attend(q: torch.Tensor, seq_ids: torch.Tensor, positions: torch.Tensor, win_pool: torch.Tensor,
           win_table: torch.Tensor, sink: torch.Tensor, scale: float, window: int, cmp_pool=None, cmp_table=None,
           ratio: int = 0, topk_idxs=None) -> torch.Tensor | None:
    """o [T, H, D] as kernels.sparse_attn.sparse_attn defines it (same arguments, already checked by its `_check`):
    each query over its window rows and its compressed rows (CSA picks, or HCA's visible rows), read in place through
    the block tables. None when `applies(q)` is False or a pool is not fp32 (the caller runs the torch path)."""
    if not (applies(q) and win_pool.dtype == torch.float32 and (not ratio or cmp_pool.dtype == torch.float32)):
        return None
    t, h, d = q.shape
    out = torch.empty(t, h, d, dtype=torch.float32)
    if not t:
        return out
    qc, sk = q.contiguous(), sink.float().contiguous()
    pos, seq = positions.to(torch.long).contiguous(), seq_ids.to(torch.int32).contiguous()
    wt = win_table.to(torch.int32).contiguous()
    ct = cmp_table.to(torch.int32).contiguous() if ratio else wt
    picks = topk_idxs.to(torch.int32).contiguous() if ratio and topk_idxs is not None else None
    k = picks.shape[1] if picks is not None else 0
    wb = k if picks is not None else (int((pos.max() + 1) // ratio) if ratio else 0)
    if _library().wholedoc_sparse_attention(
            qc.data_ptr(), pos.data_ptr(), seq.data_ptr(), win_pool.data_ptr(), wt.data_ptr(), wt.shape[1], window,
            cmp_pool.data_ptr() if ratio else None, ct.data_ptr(), ct.shape[1], ratio,
            rows_per_block(ratio) if ratio else 1, picks.data_ptr() if picks is not None else None, k, wb,
            sk.data_ptr(), scale, t, h, d, out.data_ptr(), torch.get_num_threads()) != 0:
        raise MemoryError("cpu_attention: scratch allocation failed")
    return out
