/* Batched DTW for the REACT FRD metric: many (prediction, listener) pairs at once, on the CPU.
 *
 * FRD needs three unconstrained DTWs per pair (dims 0-14, 15-16, 17-24 of the 25 facial attributes), and
 * tens of thousands of pairs of 750x750 frames (MARS: 58 to > 20,000 frames). One pair's DP is a serial
 * chain, which no compiler vectorises, so this kernel runs W pairs in lock-step, one per SIMD lane: the data
 * of a chunk of pairs is laid out [frame][dim][lane] and every operation below is on W-wide float vectors.
 * Lanes may differ in length: a chunk sweeps its longest series (zero-padded) and reads each lane's result
 * at its own end cell, so the caller sorts pairs by length. Memory is O(length): no cost matrix is stored.
 *
 * Local costs of groups 0-14 and 17-24 use |x|^2 + |y|^2 - 2 x.y (one FMA per dim instead of a subtract and
 * an FMA) on data centred per pair and dim, which keeps float32 within ~1e-6 of tslearn's float64 result.
 * The norms are computed with the same dot routine as x.y, so identical frames cost exactly 0 and a
 * prediction equal to its reference scores exactly 0, as in the official code. Valence/arousal use
 * (x - y)^2 directly (on inputs scaled by sqrt(1/2)). The DP runs on half-costs; the caller gets
 * sqrt(2 * D) per group.
 *
 * Where the time goes (measured, see notes/issue-13.md): the cost FMAs (25 of ~40 vector ops per cell) on
 * the two FMA ports, then the DP's min/add ops and the loads; laying a chunk out took a third of the time
 * until it went frame by frame (load_side). So per BAND x TILE tile and group the costs go into 16 register
 * accumulators (8 loads per 16 FMAs) and that group's DP runs on them in registers; the DP is blocked so
 * both series' working sets stay in L1/L2.
 *
 * Built at first use by regnn.metrics.dtw with -march=native: W = 16 with AVX-512, 8 with AVX2 + FMA,
 * else 4 (SSE or GCC's generic vectors). No OpenMP: Python threads call frd_dtw on the same range and
 * take its chunks from a shared counter (ctypes releases the GIL).
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

#define TILE 4 /* columns per register tile */

/* A loaded value the compiler must keep in a register: without this GCC folds the load into each of its
 * BAND (or TILE) FMAs, 1.25 loads per FMA, and the two load ports, not the two FMA ports, set the pace. */
static inline __attribute__((always_inline)) vf in_register(vf v) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+v"(v));
#elif defined(__aarch64__)
    __asm__("" : "+w"(v));
#endif
    return v;
}

/* acc[r][c] = x[r] . y[c] over dims [lo, hi) for a BAND x TILE tile, like a small matrix multiply: per dim,
 * BAND loads of x and TILE loads of y feed BAND * TILE FMAs into 16 register accumulators. Same FMA order
 * as dot(), so a frame against itself gives exactly its norm. x: X + i0 * NDIM, y: Y + j0 * NDIM. */
static inline __attribute__((always_inline)) void tile_dot(const vf *x, const vf *y, int lo, int hi,
                                                           vf acc[BAND][TILE]) {
    vf xr[BAND];
    for (int r = 0; r < BAND; r++) xr[r] = in_register(x[r * NDIM + lo]);
    for (int c = 0; c < TILE; c++) {
        vf yc = in_register(y[c * NDIM + lo]);
        for (int r = 0; r < BAND; r++) acc[r][c] = xr[r] * yc;
    }
    for (int d = lo + 1; d < hi; d++) {
        for (int r = 0; r < BAND; r++) xr[r] = in_register(x[r * NDIM + d]);
        for (int c = 0; c < TILE; c++) {
            vf yc = in_register(y[c * NDIM + d]);
            for (int r = 0; r < BAND; r++) acc[r][c] = vfma(xr[r], yc, acc[r][c]);
        }
    }
}

/* Half-costs of group k (0: dims 0-14, 1: dims 17-24) of the tile: |x|^2/2 + |y|^2/2 - x.y. */
static inline __attribute__((always_inline)) void tile_norm_costs(const vf *x, const vf *y, const vf *hx,
                                                                  const vf *hy, int k, vf acc[BAND][TILE]) {
    tile_dot(x, y, k ? G2_END : 0, k ? NDIM : G1_END, acc);
    for (int r = 0; r < BAND; r++)
        for (int c = 0; c < TILE; c++) acc[r][c] = (hx[r * 2 + k] + hy[c * 2 + k]) - acc[r][c];
}

/* Half-costs of valence/arousal (inputs pre-scaled by sqrt(1/2)): (x - y)^2 summed over the two dims. */
static inline __attribute__((always_inline)) void tile_va_costs(const vf *x, const vf *y, vf acc[BAND][TILE]) {
    for (int r = 0; r < BAND; r++)
        for (int c = 0; c < TILE; c++) {
            vf d0 = x[r * NDIM + G1_END] - y[c * NDIM + G1_END];
            vf d1 = x[r * NDIM + G1_END + 1] - y[c * NDIM + G1_END + 1];
            acc[r][c] = vfma(d1, d1, d0 * d0);
        }
}

/* The DP over one group's tile, in place: cost[r][c] becomes D[i0 + r][j0 + c].
 * left[r]: D[i0 + r][j0 - 1] (updated to column j0 + TILE - 1); *corner: D[i0 - 1][j0 - 1] (updated to
 * D[i0 - 1][j0 + TILE - 1]); prev[c * NGROUP]: D[i0 - 1][j0 + c], updated to D[i0 + BAND - 1][j0 + c].
 * min(min(diag, left), up) puts the cell above, the in-column dependency, last: a 2-op chain per row. */
static inline __attribute__((always_inline)) void tile_dp(vf cost[BAND][TILE], vf left_io[BAND], vf *corner,
                                                          vf *prev) {
    vf top = *corner, left[BAND];
    for (int r = 0; r < BAND; r++) left[r] = left_io[r];
    for (int c = 0; c < TILE; c++) {
        vf up = prev[c * NGROUP], dg = top;
        top = up;
        for (int r = 0; r < BAND; r++) {
            vf v = cost[r][c] + vmin(vmin(dg, left[r]), up);
            dg = left[r];
            left[r] = v;
            cost[r][c] = v;
            up = v;
        }
        prev[c * NGROUP] = up;
    }
    for (int r = 0; r < BAND; r++) left_io[r] = left[r];
    *corner = top;
}

/* One group's tile: costs into 16 register accumulators, then its DP on them; `out` (when not NULL)
 * receives the tile's D values. Not inlined: compiled alone, each keeps its accumulators and operands in
 * registers (inlined into the band loop, GCC spilled them and reloaded operands per FMA: 1.5 loads per
 * FMA instead of 0.5). */
#define GROUP_TILE(name, COSTS)                                                                              \
    static __attribute__((noinline)) void name(const vf *x, const vf *y, const vf *hx, const vf *hy,         \
                                               vf left[BAND], vf *corner, vf *prev, vf out[BAND][TILE]) {    \
        vf acc[BAND][TILE];                                                                                  \
        (void)hx, (void)hy;                                                                                  \
        COSTS;                                                                                               \
        tile_dp(acc, left, corner, prev);                                                                    \
        if (__builtin_expect(out != NULL, 0))                                                                \
            for (int r = 0; r < BAND; r++)                                                                   \
                for (int c = 0; c < TILE; c++) out[r][c] = acc[r][c];                                        \
    }
GROUP_TILE(au_tile, tile_norm_costs(x, y, hx, hy, 0, acc))
GROUP_TILE(em_tile, tile_norm_costs(x, y, hx, hy, 1, acc))
GROUP_TILE(va_tile, tile_va_costs(x, y, acc))

/* Where a lane's DTW ends: D[row][col] of lane `lane` (its last frames), read when the sweep passes it. */
typedef struct {
    int64_t row, col;
    int lane;
} end_cell;

/* Advance DP rows [i0, i0 + BAND) over columns [j_begin, j_end) (multiples of TILE).
 * prev[j * NGROUP + g] holds D[i0 - 1][j] and receives D[i0 + BAND - 1][j]; left[r * NGROUP + g] holds
 * D[i0 + r][j_begin - 1] and receives D[i0 + r][j_end - 1]; corner[g] holds D[i0 - 1][j_begin - 1] and
 * receives D[i0 - 1][j_end - 1]. Per tile the three groups run one after another, each as costs into 16
 * registers and then its DP on them, so costs never go through memory. ends[0..n_ends) are the end cells
 * in this block, sorted by column; their values go to result[lane]. */
static void dp_band(const vf *X, const vf *HX, const vf *Y, const vf *HY, vf *prev, vf *left_rows, vf *corner,
                    int64_t i0, int64_t j_begin, int64_t j_end, const end_cell *ends, int n_ends,
                    float result[][NGROUP]) {
    vf left[NGROUP][BAND];
    for (int g = 0; g < NGROUP; g++)
        for (int r = 0; r < BAND; r++) left[g][r] = left_rows[r * NGROUP + g];
    const vf *x = X + i0 * NDIM, *hx = HX + i0 * 2;
    int next = 0;
    int64_t next_col = n_ends ? ends[0].col : -1;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += TILE) {
        const vf *y = Y + j0 * NDIM, *hy = HY + j0 * 2;
        vf *pj = prev + j0 * NGROUP;
        int capture = next_col >= j0 && next_col < j0 + TILE; /* rare: at most W tiles per chunk */
        vf tile[NGROUP][BAND][TILE];
        au_tile(x, y, hx, hy, left[0], &corner[0], pj + 0, capture ? tile[0] : NULL);
        em_tile(x, y, hx, hy, left[2], &corner[2], pj + 2, capture ? tile[2] : NULL);
        va_tile(x, y, hx, hy, left[1], &corner[1], pj + 1, capture ? tile[1] : NULL);
        if (__builtin_expect(capture, 0)) {
            for (; next < n_ends && ends[next].col < j0 + TILE; next++) {
                const end_cell *e = ends + next;
                for (int g = 0; g < NGROUP; g++) result[e->lane][g] = tile[g][e->row - i0][e->col - j0][e->lane];
            }
            next_col = next < n_ends ? ends[next].col : -1;
        }
    }
    for (int g = 0; g < NGROUP; g++)
        for (int r = 0; r < BAND; r++) left_rows[r * NGROUP + g] = left[g][r];
}

/* The DP runs in blocks of ROW_BLOCK rows x COL_BLOCK columns, row block by row block: a column block of
 * the second series (16 frames x 25 dims x W lanes, 26 KB) stays in L1 while the row block's bands pass
 * it, and the row block of the first series (200 KB) stays in L2. Swept band by band over whole rows
 * instead, the second series (1.2 MB at 750 frames) came from L3 for every band: measured 22% slower. */
#define ROW_BLOCK 128
#define COL_BLOCK 16

/* D[TA - 1][TB - 1] of a chunk, per group and lane, into result via its end cells (sorted by column). */
static void dp_chunk(const vf *X, const vf *HX, const vf *Y, const vf *HY, vf *prev, vf *left_rows, int64_t TA,
                     int64_t TB, const end_cell *ends, float result[][NGROUP]) {
    const vf inf = splat(INFINITY), zero = splat(0.0f);
    for (int64_t j = 0; j < TB * NGROUP; j++) prev[j] = inf;      /* D[-1][j] */
    for (int64_t i = 0; i < TA * NGROUP; i++) left_rows[i] = inf; /* D[i][-1] */
    for (int64_t rb = 0; rb < TA; rb += ROW_BLOCK) {
        int64_t re = rb + ROW_BLOCK < TA ? rb + ROW_BLOCK : TA;
        vf first_corner[NGROUP]; /* D[rb - 1][jb - 1]: 0 only at D[-1][-1] */
        for (int g = 0; g < NGROUP; g++) first_corner[g] = rb == 0 ? zero : inf;
        for (int64_t jb = 0; jb < TB; jb += COL_BLOCK) {
            int64_t je = jb + COL_BLOCK < TB ? jb + COL_BLOCK : TB;
            vf corner[NGROUP];
            memcpy(corner, first_corner, sizeof(corner));
            for (int64_t i0 = rb; i0 < re; i0 += BAND) {
                end_cell block_ends[W];
                int k = 0;
                for (int q = 0; q < W; q++)
                    if (ends[q].row >= i0 && ends[q].row < i0 + BAND && ends[q].col >= jb && ends[q].col < je)
                        block_ends[k++] = ends[q];
                vf saved[NGROUP]; /* D[i0 + BAND - 1][jb - 1]: the next band's corner */
                memcpy(saved, left_rows + (i0 + BAND - 1) * NGROUP, sizeof(saved));
                dp_band(X, HX, Y, HY, prev, left_rows + i0 * NGROUP, corner, i0, jb, je, block_ends, k, result);
                if (i0 == rb) memcpy(first_corner, corner, sizeof(corner));
                memcpy(corner, saved, sizeof(corner));
            }
        }
    }
}

/* Sum over frames of each dim of one series, in frame order (the same double sums for every lane layout). */
static void dim_sums(const float *x, int64_t t_len, double sums[NDIM]) {
    for (int d = 0; d < NDIM; d++) sums[d] = 0.0;
    for (int64_t t = 0; t < t_len; t++)
        for (int d = 0; d < NDIM; d++) sums[d] += x[t * NDIM + d];
}

/* One side of a chunk laid out [frame][dim][lane]: lane l gets ((double)x - centre) * scale for its frames
 * and zeros beyond them; H gets the half norms of both norm groups. Frame by frame, so the frame's 25
 * vectors (1.6 KB) stay in L1 while the lanes fill them: lane by lane over the whole series instead, each
 * frame's cache lines came back from L3 once per lane, and loading took a third of the kernel's time. */
static void load_side(const float *const *p, const int64_t *len, int64_t T, const double centre[W][NDIM],
                      vf *X, vf *H) {
    double scale[NDIM]; /* valence/arousal enter as (x - y)^2 / 2 directly: scaled by sqrt(1/2) here */
    for (int d = 0; d < NDIM; d++) scale[d] = d >= G1_END && d < G2_END ? sqrt(0.5) : 1.0;
    const vf half = splat(0.5f);
    for (int64_t t = 0; t < T; t++) {
        float rows[W][NDIM]; /* this frame of every lane, centred: vectorised over dims, then transposed */
        for (int l = 0; l < W; l++) {
            if (t < len[l]) {
                const float *row = p[l] + t * NDIM;
                for (int d = 0; d < NDIM; d++) rows[l][d] = (float)(((double)row[d] - centre[l][d]) * scale[d]);
            } else {
                for (int d = 0; d < NDIM; d++) rows[l][d] = 0.0f; /* beyond the lane's end cell */
            }
        }
        vf *x = X + t * NDIM;
        for (int d = 0; d < NDIM; d++)
            for (int l = 0; l < W; l++) x[d][l] = rows[l][d];
        H[t * 2] = dot(x, x, 0, G1_END) * half;
        H[t * 2 + 1] = dot(x, x, G2_END, NDIM) * half;
    }
}

/* Centre one chunk's pairs per dim (on the mean of both series' means) and lay them out [frame][dim][lane],
 * padded with zeros to TA x TB (padded frames lie beyond a lane's end cell, so they never reach its result). */
static void load_chunk(const float *const *pa, const int64_t *ta, const float *const *pb, const int64_t *tb,
                       int64_t TA, int64_t TB, vf *X, vf *Y, vf *HX, vf *HY) {
    double centre[W][NDIM];
    for (int l = 0; l < W; l++) {
        double sa[NDIM], sb[NDIM];
        dim_sums(pa[l], ta[l], sa);
        dim_sums(pb[l], tb[l], sb);
        for (int d = 0; d < NDIM; d++) centre[l][d] = 0.5 * (sa[d] / (double)ta[l] + sb[d] / (double)tb[l]);
    }
    load_side(pa, ta, TA, centre, X, HX);
    load_side(pb, tb, TB, centre, Y, HY);
}

static inline int64_t padded(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

static int by_col(const void *p, const void *q) {
    const end_cell *a = p, *b = q;
    return a->col < b->col ? -1 : a->col > b->col;
}

int frd_dtw_lanes(void) { return W; }

/* DTW per group for pairs p in chunks [c0, c1) of W consecutive pairs: series a[p] (ta[p] x 25 float32,
 * C-contiguous) against b[p] (tb[p] x 25). A chunk's pairs share one sweep over its longest series, so the
 * caller orders pairs by length. Threads calling this on the same range share `claimed` (0 at the start):
 * each takes the next unclaimed chunk, the last (longest) first, so the threads finish within about one
 * chunk of each other whatever the lengths. Work memory is O(longest series) per thread: no cost matrix is
 * ever stored. out: (n_pairs, 3) float64. Returns 0, or -1 if memory could not be allocated. */
int frd_dtw(const float *const *a, const int64_t *ta, const float *const *b, const int64_t *tb, int64_t n_pairs,
            int64_t c0, int64_t c1, int64_t *claimed, double *out) {
    int64_t max_a = 1, max_b = 1;
    for (int64_t p = c0 * W; p < n_pairs && p < c1 * W; p++) {
        if (ta[p] > max_a) max_a = ta[p];
        if (tb[p] > max_b) max_b = tb[p];
    }
    max_a = padded(max_a, BAND), max_b = padded(max_b, TILE);
    size_t bytes_x = (size_t)max_a * NDIM * sizeof(vf), bytes_y = (size_t)max_b * NDIM * sizeof(vf);
    size_t bytes_hx = (size_t)max_a * 2 * sizeof(vf), bytes_hy = (size_t)max_b * 2 * sizeof(vf);
    size_t bytes_prev = (size_t)max_b * NGROUP * sizeof(vf), bytes_left = (size_t)max_a * NGROUP * sizeof(vf);
    void *X = NULL, *Y = NULL, *HX = NULL, *HY = NULL, *prev = NULL, *left_rows = NULL;
    int status = -1;
    if (posix_memalign(&X, 64, bytes_x) || posix_memalign(&Y, 64, bytes_y) ||
        posix_memalign(&HX, 64, bytes_hx) || posix_memalign(&HY, 64, bytes_hy) ||
        posix_memalign(&prev, 64, bytes_prev) || posix_memalign(&left_rows, 64, bytes_left))
        goto done;
    for (;;) {
        int64_t c = c1 - 1 - __atomic_fetch_add(claimed, 1, __ATOMIC_RELAXED);
        if (c < c0) break;
        int64_t p0 = c * W;
        int n = (int)(n_pairs - p0 < W ? n_pairs - p0 : W);
        if (n <= 0) continue;
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
        qsort(ends, W, sizeof(end_cell), by_col);
        TA = padded(TA, BAND), TB = padded(TB, TILE); /* padded frames lie beyond every lane's end cell */
        load_chunk(pa, la, pb, lb, TA, TB, X, Y, HX, HY);
        dp_chunk(X, HX, Y, HY, prev, left_rows, TA, TB, ends, result);
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
    free(left_rows);
    return status;
}
