"""V4's sparse attention on CPU as one C loop over queries: each query reads its own rows in place from the pools.

For query t at position p: o_h = Σ_j softmax_j(scale·q_h·k_j | sink_h) k_j over its rows j (K = V): the raw window
rows p−window+1..p and the compressed rows (a CSA query's picks, an HCA query's visible rows), each found through
its block table and read where it lies in the pool. The torch path (kernels.sparse_attn.sparse_attn_torch) gathers
rows and runs torch's fused attention over query chunks, paying for a chunk's window band and the union of its
picks (up to 6·k rows for every query) and for the gathers, masks and index tensors; here each query touches
exactly its own rows and no index tensor is built (docs/cpu-profile.md).

Per query and group of 8 heads, in 512-bit vectors whose lane 2h+p belongs to head h and element parity p (so
no horizontal sums, and one 64-bit broadcast of a row's elements 2e, 2e+1 feeds all 16 lanes):

- scores: the scaled q laid out that way, times each row's element pairs, 8 rows at a time (8 independent FMA
  chains over D/2), then each lane pair summed (each head's score held twice);
- softmax with the sink in the denominator: max over the rows and the sink logit, exp (Cephes' expf polynomial,
  within 2 ulp of libm's), sum, one reciprocal;
- output: 32 elements of D a pass in 16 accumulators, each row's probabilities times its element pairs; then
  scaled by the reciprocal and transposed back to [H][D].

This CPU runs 512-bit FMAs at twice the rate of 256-bit ones: a first version with the 8 heads in a 256-bit vector
took 44 ms for 2048 queries × 640 rows (8 heads × 128), this one 27.5 ms (196 GFLOP/s on 2 threads; torch's own
fp32 GEMM reaches ≈ 180 here). Threads: pthreads (torch's thread count) take queries from a shared counter (a last
group of fewer than 8 heads leaves lanes idle). Used for fp32 with D a multiple of 16 when AVX-512 is compiled in
(-march=native); otherwise `attend` returns None and the caller runs the torch path. Sums run in another order
than torch's, so outputs differ by rounding (≈ 1e-7 relative; more where logits are large, as in any fp32
softmax).
"""

from __future__ import annotations

import ctypes

import torch

from . import cpu_native
from .errors import check
from .layout import BLOCK_TOKENS, rows_per_block

_SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>

#define BT @BLOCK_TOKENS@  /* tokens a window block holds (kernels.layout.BLOCK_TOKENS) */

/* e^x for 16 floats (x <= 0 here), Cephes' expf: x = n ln2 + r, e^r by a degree-5 polynomial, times 2^n
 * (x >= -104 first: e^-104 is 0 in fp32, and -inf would make NaN) */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

typedef struct {
    const float *q, *A, *B, *sink;
    const long *pos;
    const int *seq, *wt, *ct, *picks;
    float *out;
    long T, H, D, window, wt_stride, ratio, rpb, ct_stride, K, WB, wt_rows, ct_rows, a_blocks, b_blocks;
    float scale;
    long *next;
    int failed;
} job_t;

typedef struct { const float **rp; float *s, *qt, *ot, *zero; } scratch_t;

/* the row's elements x[0], x[1] in every pair of lanes (one 64-bit broadcast load) */
static inline __m512 pair(const float *x) {
    double v;
    memcpy(&v, x, sizeof v);
    return _mm512_castpd_ps(_mm512_set1_pd(v));
}

/* ot[(d0/2 + c)·16 + 2h + p] = inv_h · Σ_r p_h[r] · row_r[d0 + 2c + p] for c < nc (nc 16 or 8: 32 or 16 elements) */
static inline __attribute__((always_inline)) void pv_pass(scratch_t *w, long R, long d0, const int nc, __m512 inv) {
    __m512 c[16];
    for (int i = 0; i < nc; ++i) c[i] = _mm512_setzero_ps();
    for (long r = 0; r < R; ++r) {
        __m512 pr = _mm512_loadu_ps(w->s + r * 16);
        const float *row = w->rp[r] + d0;
        for (int i = 0; i < nc; ++i) c[i] = _mm512_fmadd_ps(pr, pair(row + 2 * i), c[i]);
    }
    for (int i = 0; i < nc; ++i) _mm512_storeu_ps(w->ot + (d0 / 2 + i) * 16, _mm512_mul_ps(c[i], inv));
}

/* returns 0, or 4 when a row it would read lies outside its block table or pool (nothing is read then) */
static int attend_one(const job_t *j, long t, scratch_t *w) {
    const long D = j->D;
    /* the query's rows, in place: window rows p-window+1..p through the window block table, then the compressed
     * rows (its picks, or every visible row) through the compressed block table; rows not yet written are skipped.
     * Every block-table entry read is checked against its pool: a bad table is an error, not a stray read. */
    long R = 0, p = j->pos[t], s = j->seq[t];
    if (s < 0 || s >= j->wt_rows || p < 0 || p / BT >= j->wt_stride) return 4;
    const int *wt = j->wt + s * j->wt_stride;
    for (long r = p - j->window + 1 < 0 ? 0 : p - j->window + 1; r <= p; ++r) {
        long b = wt[r / BT];
        if (b < 0 || b >= j->a_blocks) return 4;
        w->rp[R++] = j->A + (b * BT + r % BT) * D;
    }
    if (j->ratio) {
        const long nv = (p + 1) / j->ratio, rpb = j->rpb;
        if (s >= j->ct_rows || (nv > 0 && (nv - 1) / rpb >= j->ct_stride)) return 4;
        const int *ct = j->ct + s * j->ct_stride;
        for (long i = 0; i < (j->picks ? j->K : (nv < j->WB ? nv : j->WB)); ++i) {
            long r = j->picks ? j->picks[t * j->K + i] : i;
            if (r < 0 || r >= nv) continue;
            long b = ct[r / rpb];
            if (b < 0 || b >= j->b_blocks) return 4;
            w->rp[R++] = j->B + (b * rpb + r % rpb) * D;
        }
    }
    long Rp = (R + 7) / 8 * 8;
    for (long r = R; r < Rp; ++r) w->rp[r] = w->zero;
    for (long h0 = 0; h0 < j->H; h0 += 8) {
        const float *qh = j->q + (t * j->H + h0) * D;
        const int hb = j->H - h0 < 8 ? (int)(j->H - h0) : 8;   /* heads in this group; idle lanes score 0 */
        float sk16[16] = {0};
        for (int i = 0; i < hb; ++i) sk16[2 * i] = sk16[2 * i + 1] = j->sink[h0 + i];
        /* lane 2h+p of step e holds head h's element 2e+p: one 64-bit broadcast of a row's elements 2e, 2e+1
         * feeds all 16 lanes */
        for (long e = 0; e < D / 2; ++e)
            for (int i = 0; i < 8; ++i)
                for (int p2 = 0; p2 < 2; ++p2)
                    w->qt[e * 16 + 2 * i + p2] = i < hb ? qh[i * D + 2 * e + p2] * j->scale : 0.0f;
        /* scores: S[r] = 16 lanes, each head's score twice (the lane pair summed and spread) */
        const __m512i swap = _mm512_set_epi32(14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1);
        for (long r0 = 0; r0 < Rp; r0 += 8) {
            const float *p0 = w->rp[r0], *p1 = w->rp[r0 + 1], *p2 = w->rp[r0 + 2], *p3 = w->rp[r0 + 3];
            const float *p4 = w->rp[r0 + 4], *p5 = w->rp[r0 + 5], *p6 = w->rp[r0 + 6], *p7 = w->rp[r0 + 7];
            if (r0 + 8 < Rp)
                for (int i = 0; i < 8; ++i)
                    for (long d = 0; d < D; d += 16) _mm_prefetch((const char *)(w->rp[r0 + 8 + i] + d), _MM_HINT_T0);
            __m512 a[8];
            for (int i = 0; i < 8; ++i) a[i] = _mm512_setzero_ps();
            for (long e = 0; e < D / 2; ++e) {
                __m512 qd = _mm512_loadu_ps(w->qt + e * 16);
                a[0] = _mm512_fmadd_ps(qd, pair(p0 + 2 * e), a[0]);
                a[1] = _mm512_fmadd_ps(qd, pair(p1 + 2 * e), a[1]);
                a[2] = _mm512_fmadd_ps(qd, pair(p2 + 2 * e), a[2]);
                a[3] = _mm512_fmadd_ps(qd, pair(p3 + 2 * e), a[3]);
                a[4] = _mm512_fmadd_ps(qd, pair(p4 + 2 * e), a[4]);
                a[5] = _mm512_fmadd_ps(qd, pair(p5 + 2 * e), a[5]);
                a[6] = _mm512_fmadd_ps(qd, pair(p6 + 2 * e), a[6]);
                a[7] = _mm512_fmadd_ps(qd, pair(p7 + 2 * e), a[7]);
            }
            for (int i = 0; i < 8; ++i)
                _mm512_storeu_ps(w->s + (r0 + i) * 16, _mm512_add_ps(a[i], _mm512_permutexvar_ps(swap, a[i])));
        }
        /* softmax with the sink: p = e^(s - m) / (Σ e^(s - m) + e^(sink - m)), m = max(rows, sink) */
        __m512 sk = _mm512_loadu_ps(sk16), m = sk, l = _mm512_setzero_ps();
        for (long r = 0; r < R; ++r) m = _mm512_max_ps(m, _mm512_loadu_ps(w->s + r * 16));
        for (long r = 0; r < R; ++r) {
            __m512 ex = exp16(_mm512_sub_ps(_mm512_loadu_ps(w->s + r * 16), m));
            _mm512_storeu_ps(w->s + r * 16, ex);
            l = _mm512_add_ps(l, ex);
        }
        l = _mm512_add_ps(l, exp16(_mm512_sub_ps(sk, m)));
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), l);
        /* o: lane 2h+p of accumulator c accumulates head h's element d0 + 2c + p over the rows (32 elements of D a
         * pass; a last 16 with 8 accumulators) */
        long d0 = 0;
        for (; d0 + 32 <= D; d0 += 32) pv_pass(w, R, d0, 16, inv);
        if (d0 < D) pv_pass(w, R, d0, 8, inv);
        float *oh = j->out + (t * j->H + h0) * D;
        for (int i = 0; i < hb; ++i)
            for (long d = 0; d < D; ++d) oh[i * D + d] = w->ot[(d / 2) * 16 + 2 * i + (d & 1)];
    }
}

static void *work(void *arg) {
    job_t *j = (job_t *)arg;
    long R = j->window + j->WB + 8;
    size_t f = sizeof(float);
    scratch_t w = {(const float **)malloc(sizeof(float *) * (size_t)R), (float *)malloc(f * (size_t)(R * 16)),
                   (float *)malloc(f * (size_t)(j->D * 8)), (float *)malloc(f * (size_t)(j->D * 8)),
                   (float *)calloc((size_t)j->D, f)};
    if (!w.rp || !w.s || !w.qt || !w.ot || !w.zero) {
        j->failed = 1;
    } else {
        for (;;) {
            long t = __atomic_fetch_add(j->next, 1, __ATOMIC_RELAXED);
            if (t >= j->T) break;
            j->failed |= attend_one(j, t, &w);
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
 * wt_rows / ct_rows: rows of the block tables; a_blocks / b_blocks: blocks of the pools A / B.
 * Returns 0; or 1 if scratch allocation failed, 4 if a row lies outside its table or pool (bits, or-ed over the
 * threads); 2 if not compiled with AVX-512. */
int wholedoc_sparse_attention(const float *q, const long *pos, const int *seq, const float *A, const int *wt,
                              long wt_stride, long window, const float *B, const int *ct, long ct_stride, long ratio,
                              long rpb, const int *picks, long K, long WB, const float *sink, float scale, long T,
                              long H, long D, float *out, long wt_rows, long ct_rows, long a_blocks, long b_blocks,
                              long threads) {
#ifdef __AVX512F__
    long next = 0;
    threads = clamp_threads(threads, T);
    job_t jobs[MAX_THREADS];
    for (long t = 0; t < threads; ++t)
        jobs[t] = (job_t){q, A, B, sink, pos, seq, wt, ct, picks, out, T, H, D, window, wt_stride, ratio, rpb,
                          ct_stride, K, WB, wt_rows, ct_rows, a_blocks, b_blocks, scale, &next, 0};
    run_threads(work, jobs, sizeof(job_t), threads);
    int failed = 0;
    for (long t = 0; t < threads; ++t) failed |= jobs[t].failed;
    return failed;
#else
    return 2;
#endif
}
"""
_SOURCE = _SOURCE.replace("@BLOCK_TOKENS@", str(BLOCK_TOKENS))
_P, _N = ctypes.c_void_p, ctypes.c_long
_SIGNATURES = {"wholedoc_sparse_attention": [_P, _P, _P, _P, _P, _N, _N, _P, _P, _N, _N, _N, _P, _N, _N, _P,
                                             ctypes.c_float, _N, _N, _N, _P, _N, _N, _N, _N, _N]}
_lib: list[ctypes.CDLL | None] = []


def _library() -> ctypes.CDLL | None:
    if not _lib:
        _lib.append(cpu_native.build_vectorized("attention", _SOURCE, "wholedoc_attention_vectorized", _SIGNATURES))
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
    rc = _library().wholedoc_sparse_attention(
            qc.data_ptr(), pos.data_ptr(), seq.data_ptr(), win_pool.data_ptr(), wt.data_ptr(), wt.shape[1], window,
            cmp_pool.data_ptr() if ratio else None, ct.data_ptr(), ct.shape[1], ratio,
            rows_per_block(ratio) if ratio else 1, picks.data_ptr() if picks is not None else None, k, wb,
            sk.data_ptr(), scale, t, h, d, out.data_ptr(), wt.shape[0], ct.shape[0], win_pool.shape[0],
            cmp_pool.shape[0] if ratio else 0, torch.get_num_threads())
    check(not rc & 4, "sparse attention: a query's rows lie outside its block table or pool (positions "
          f"{int(pos.min())}..{int(pos.max())}, window table {tuple(wt.shape)})")
    if rc & 1:
        raise MemoryError("cpu_attention: scratch allocation failed")
    return out
