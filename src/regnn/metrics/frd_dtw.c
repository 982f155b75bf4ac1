/* Batched DTW for the REACT FRD metric: many (prediction, listener) pairs at once, on the CPU.
 *
 * FRD needs three unconstrained DTWs per pair (dims 0-14, 15-16, 17-24 of the 25 facial attributes), and
 * tens of thousands of pairs of 750x750 frames. One pair's DP is a serial chain, which no compiler
 * vectorises, so this kernel runs W pairs in lock-step, one per SIMD lane: the data of a chunk of pairs is
 * laid out [frame][dim][lane], every operation below is on W-wide float vectors, and the three groups' DPs
 * are fused in one sweep so their chains overlap.
 *
 * Local costs of groups 0-14 and 17-24 use |x|^2 + |y|^2 - 2 x.y (one FMA per dim instead of a subtract and
 * an FMA) on data centred per pair and dim, which keeps float32 within ~1e-6 of tslearn's float64 result.
 * The norms are computed with the same dot routine as x.y, so identical frames cost exactly 0 and a
 * prediction equal to its reference scores exactly 0, as in the official code. Valence/arousal use
 * (x - y)^2 directly (on inputs scaled by sqrt(1/2)). The DP runs on half-costs; the caller gets
 * sqrt(2 * D) per group. Costs are computed in BAND x TILE register tiles, then the DP advances BAND rows
 * column by column. The cost FMAs dominate (23 per cell); a skewed DP order was tried and was not faster.
 *
 * Built at first use by regnn.metrics.dtw with -march=native: W = 16 with AVX-512, 8 with AVX2 + FMA,
 * else 4 (SSE or GCC's generic vectors). No OpenMP: Python threads call disjoint chunk ranges (ctypes
 * releases the GIL).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define W 16
#elif defined(__AVX__) && defined(__FMA__)
#define W 8
#else
#define W 4
#endif

#if defined(__AVX__) || defined(__SSE__)
#include <immintrin.h>
#endif

typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

#define NDIM 25
#define G1_END 15 /* group 0: dims [0, 15), weight 1/15 */
#define G2_END 17 /* group 1: dims [15, 17), weight 1 */
#define NGROUP 3  /* group 2: dims [17, 25), weight 1/8 */
#define BAND 4    /* rows of the DP advanced together per column */

static inline vf vmin(vf a, vf b) {
#if defined(__AVX512F__)
    return (vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif W == 8
    return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#elif defined(__SSE__)
    return (vf)_mm_min_ps((__m128)a, (__m128)b);
#else
    vi m = a < b;
    return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

/* a * b + c with one rounding where the CPU has FMA. Explicit (the file is built with -ffp-contract=off) so
 * that norms and cross terms round identically and identical frames cost exactly 0. */
static inline vf vfma(vf a, vf b, vf c) {
#if defined(__AVX512F__)
    return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

static inline vf splat(float v) {
    vf r;
    for (int l = 0; l < W; l++) r[l] = v;
    return r;
}

/* Dot product over dims [lo, hi); used for both norms and cross terms so x == y gives bitwise equal values. */
static inline __attribute__((always_inline)) vf dot(const vf *x, const vf *y, int lo, int hi) {
    vf acc = x[lo] * y[lo];
    for (int d = lo + 1; d < hi; d++) acc = vfma(x[d], y[d], acc);
    return acc;
}

/* Half-costs of the three groups for one cell; hx/hy hold half squared norms of groups 0 and 2. */
static inline __attribute__((always_inline)) void cell_costs(const vf *x, const vf *y, const vf *hx,
                                                             const vf *hy, vf c[NGROUP]) {
    c[0] = (hx[0] + hy[0]) - dot(x, y, 0, G1_END);
    vf d0 = x[G1_END] - y[G1_END], d1 = x[G1_END + 1] - y[G1_END + 1];
    c[1] = vfma(d1, d1, d0 * d0);
    c[2] = (hx[1] + hy[1]) - dot(x, y, G2_END, NDIM);
}

#define TILE 4 /* columns per cost tile */

/* Register-tiled costs of a BAND x TILE block (like a small matrix multiply: each loaded x[r][d] and
 * y[c][d] feeds TILE resp. BAND FMAs), written to an L1-resident tile. Same FMA order as dot(). */
static inline __attribute__((always_inline)) void tile_costs(const vf *X, const vf *HX, const vf *Y,
                                                             const vf *HY, int64_t i0, int64_t j0,
                                                             vf cost[TILE][BAND][NGROUP]) {
    const vf *x[BAND], *y[TILE];
    for (int r = 0; r < BAND; r++) x[r] = X + (i0 + r) * NDIM;
    for (int c = 0; c < TILE; c++) y[c] = Y + (j0 + c) * NDIM;
    static const int lo[2] = {0, G2_END}, hi[2] = {G1_END, NDIM}, group[2] = {0, 2};
    for (int k = 0; k < 2; k++) {
        vf acc[BAND][TILE];
        for (int r = 0; r < BAND; r++)
            for (int c = 0; c < TILE; c++) acc[r][c] = x[r][lo[k]] * y[c][lo[k]];
        for (int d = lo[k] + 1; d < hi[k]; d++)
            for (int r = 0; r < BAND; r++)
                for (int c = 0; c < TILE; c++) acc[r][c] = vfma(x[r][d], y[c][d], acc[r][c]);
        for (int r = 0; r < BAND; r++)
            for (int c = 0; c < TILE; c++)
                cost[c][r][group[k]] = (HX[(i0 + r) * 2 + k] + HY[(j0 + c) * 2 + k]) - acc[r][c];
    }
    for (int r = 0; r < BAND; r++)
        for (int c = 0; c < TILE; c++) {
            vf d0 = x[r][G1_END] - y[c][G1_END], d1 = x[r][G1_END + 1] - y[c][G1_END + 1];
            cost[c][r][1] = vfma(d1, d1, d0 * d0);
        }
}

/* Where a lane's DTW ends: D[row][col] of lane `lane` (its last frames), read when the sweep passes it. */
typedef struct {
    int64_t row, col;
    int lane;
} end_cell;

/* Advance `rows` DP rows starting at row i0 across all tb columns.
 * prev[(j + 1) * NGROUP + g] holds D[i0 - 1][j] (index 0: column -1) and receives D[i0 + rows - 1][j].
 * ends[0..n_ends) are the end cells in these rows, sorted by column; their values go to result[lane]. */
static inline __attribute__((always_inline)) void dp_band(const vf *X, const vf *HX, const vf *Y, const vf *HY,
                                                          vf *prev, int64_t i0, int rows, int64_t tb,
                                                          const end_cell *ends, int n_ends,
                                                          float result[][NGROUP]) {
    const vf inf = splat(INFINITY);
    vf left[BAND][NGROUP];
    vf diag_top[NGROUP];
    vf cost[TILE][BAND][NGROUP];
    int next = 0;
    int64_t next_col = n_ends ? ends[0].col : -1;
    for (int g = 0; g < NGROUP; g++) {
        diag_top[g] = prev[g];
        prev[g] = inf;
        for (int r = 0; r < BAND; r++) left[r][g] = inf;
    }
    for (int64_t j0 = 0; j0 < tb; j0 += TILE) {
        int cols = tb - j0 < TILE ? (int)(tb - j0) : TILE;
        if (rows == BAND && cols == TILE) {
            tile_costs(X, HX, Y, HY, i0, j0, cost);
        } else {
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < rows; r++)
                    cell_costs(X + (i0 + r) * NDIM, Y + (j0 + c) * NDIM, HX + (i0 + r) * 2, HY + (j0 + c) * 2,
                               cost[c][r]);
        }
        for (int c = 0; c < cols; c++) {
            vf *pj = prev + (j0 + c + 1) * NGROUP;
            vf up[NGROUP], dg[NGROUP];
            for (int g = 0; g < NGROUP; g++) {
                up[g] = pj[g];
                dg[g] = diag_top[g];
                diag_top[g] = pj[g];
            }
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < NGROUP; g++) {
                    vf v = cost[c][r][g] + vmin(vmin(up[g], dg[g]), left[r][g]);
                    dg[g] = left[r][g];
                    left[r][g] = v;
                    up[g] = v;
                }
            for (int g = 0; g < NGROUP; g++) pj[g] = up[g];
            while (__builtin_expect(j0 + c == next_col, 0)) { /* rare: at most W times per chunk */
                const end_cell *e = ends + next;
                for (int r = 0; r < BAND; r++)
                    if (r == e->row - i0)
                        for (int g = 0; g < NGROUP; g++) result[e->lane][g] = left[r][g][e->lane];
                next++;
                next_col = next < n_ends ? ends[next].col : -1;
            }
        }
    }
}

/* Centre one chunk's pairs per dim and lay them out [frame][dim][lane], padded with zeros to the chunk's
 * longest series (padded frames lie beyond a lane's end cell, so they never reach its result). */
static void load_chunk(const float *const *pa, const int64_t *ta, const float *const *pb, const int64_t *tb,
                       int64_t TA, int64_t TB, vf *X, vf *Y, vf *HX, vf *HY) {
    memset(X, 0, (size_t)TA * NDIM * sizeof(vf));
    memset(Y, 0, (size_t)TB * NDIM * sizeof(vf));
    for (int l = 0; l < W; l++) {
        const float *xa = pa[l], *xb = pb[l];
        for (int d = 0; d < NDIM; d++) {
            double sa = 0.0, sb = 0.0;
            for (int64_t t = 0; t < ta[l]; t++) sa += xa[t * NDIM + d];
            for (int64_t t = 0; t < tb[l]; t++) sb += xb[t * NDIM + d];
            double centre = 0.5 * (sa / (double)ta[l] + sb / (double)tb[l]);
            /* valence/arousal enter as (x - y)^2 / 2 directly: scale them by sqrt(1/2) here */
            double scale = (d >= G1_END && d < G2_END) ? sqrt(0.5) : 1.0;
            for (int64_t t = 0; t < ta[l]; t++)
                X[t * NDIM + d][l] = (float)(((double)xa[t * NDIM + d] - centre) * scale);
            for (int64_t t = 0; t < tb[l]; t++)
                Y[t * NDIM + d][l] = (float)(((double)xb[t * NDIM + d] - centre) * scale);
        }
    }
    const vf half = splat(0.5f);
    for (int64_t t = 0; t < TA; t++) {
        const vf *x = X + t * NDIM;
        HX[t * 2] = dot(x, x, 0, G1_END) * half;
        HX[t * 2 + 1] = dot(x, x, G2_END, NDIM) * half;
    }
    for (int64_t t = 0; t < TB; t++) {
        const vf *y = Y + t * NDIM;
        HY[t * 2] = dot(y, y, 0, G1_END) * half;
        HY[t * 2 + 1] = dot(y, y, G2_END, NDIM) * half;
    }
}

static int by_row_then_col(const void *p, const void *q) {
    const end_cell *a = p, *b = q;
    if (a->row != b->row) return a->row < b->row ? -1 : 1;
    return a->col < b->col ? -1 : a->col > b->col;
}

int frd_dtw_lanes(void) { return W; }

/* DTW per group for pairs p in chunks [c0, c1) of W consecutive pairs: series a[p] (ta[p] x 25 float32,
 * C-contiguous) against b[p] (tb[p] x 25). A chunk's pairs share one sweep over its longest series, so the
 * caller orders pairs by length. Work memory is O(longest series): no cost matrix is ever stored.
 * out: (n_pairs, 3) float64. Returns 0, or -1 if memory could not be allocated. */
int frd_dtw(const float *const *a, const int64_t *ta, const float *const *b, const int64_t *tb, int64_t n_pairs,
            int64_t c0, int64_t c1, double *out) {
    int64_t max_a = 1, max_b = 1;
    for (int64_t p = c0 * W; p < n_pairs && p < c1 * W; p++) {
        if (ta[p] > max_a) max_a = ta[p];
        if (tb[p] > max_b) max_b = tb[p];
    }
    size_t bytes_x = (size_t)max_a * NDIM * sizeof(vf), bytes_y = (size_t)max_b * NDIM * sizeof(vf);
    size_t bytes_hx = (size_t)max_a * 2 * sizeof(vf), bytes_hy = (size_t)max_b * 2 * sizeof(vf);
    size_t bytes_prev = (size_t)(max_b + 1) * NGROUP * sizeof(vf);
    void *X = NULL, *Y = NULL, *HX = NULL, *HY = NULL, *prev = NULL;
    int status = -1;
    if (posix_memalign(&X, 64, bytes_x) || posix_memalign(&Y, 64, bytes_y) ||
        posix_memalign(&HX, 64, bytes_hx) || posix_memalign(&HY, 64, bytes_hy) ||
        posix_memalign(&prev, 64, bytes_prev))
        goto done;
    const vf inf = splat(INFINITY), zero = splat(0.0f);
    for (int64_t c = c0; c < c1; c++) {
        int64_t p0 = c * W;
        int n = (int)(n_pairs - p0 < W ? n_pairs - p0 : W);
        if (n <= 0) break;
        const float *pa[W], *pb[W];
        int64_t la[W], lb[W], TA = 0, TB = 0;
        end_cell ends[W];
        float result[W][NGROUP];
        for (int l = 0; l < W; l++) { /* unused lanes repeat lane 0 */
            int64_t p = p0 + (l < n ? l : 0);
            pa[l] = a[p], pb[l] = b[p], la[l] = ta[p], lb[l] = tb[p];
            if (la[l] > TA) TA = la[l];
            if (lb[l] > TB) TB = lb[l];
            ends[l] = (end_cell){la[l] - 1, lb[l] - 1, l};
        }
        qsort(ends, W, sizeof(end_cell), by_row_then_col);
        load_chunk(pa, la, pb, lb, TA, TB, X, Y, HX, HY);
        vf *pv = (vf *)prev;
        for (int g = 0; g < NGROUP; g++) pv[g] = zero; /* D[-1][-1] = 0 */
        for (int64_t j = 1; j <= TB; j++)
            for (int g = 0; g < NGROUP; g++) pv[j * NGROUP + g] = inf;
        int e = 0;
        for (int64_t i0 = 0; i0 < TA; i0 += BAND) {
            int rows = TA - i0 < BAND ? (int)(TA - i0) : BAND;
            int e1 = e;
            while (e1 < W && ends[e1].row < i0 + rows) e1++;
            /* end cells sorted by column within the band (rows differ, so re-sort this short run) */
            end_cell band_ends[W];
            int k = 0;
            for (int q = e; q < e1; q++) band_ends[k++] = ends[q];
            for (int q = 1; q < k; q++)
                for (int r = q; r > 0 && band_ends[r].col < band_ends[r - 1].col; r--) {
                    end_cell t = band_ends[r];
                    band_ends[r] = band_ends[r - 1];
                    band_ends[r - 1] = t;
                }
            if (rows == BAND)
                dp_band(X, HX, Y, HY, pv, i0, BAND, TB, band_ends, k, result);
            else
                dp_band(X, HX, Y, HY, pv, i0, rows, TB, band_ends, k, result);
            e = e1;
        }
        for (int l = 0; l < n; l++)
            for (int g = 0; g < NGROUP; g++) {
                double v = 2.0 * (double)result[l][g];
                out[(p0 + l) * NGROUP + g] = sqrt(v > 0.0 ? v : 0.0);
            }
    }
    status = 0;
done:
    free(X);
    free(Y);
    free(HX);
    free(HY);
    free(prev);
    return status;
}
