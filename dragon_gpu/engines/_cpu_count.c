/* One-pass counting of two planes on the CPU: the hot loop of the NumPy engine, compiled.
 *
 * NumPy counts a pair of planes in five passes (two comparisons into boolean temporaries, an AND
 * and three count_nonzero); for highly compressible masks that costs as much as inflating them.
 * Here each pixel of both planes is read once, compared and counted in registers, with the GIL
 * released, so the decode threads count in parallel. The rule is the engine's: a member is
 * `value >= threshold` for a high rule and `value < threshold` for a low one.
 *
 * count_bits does the same for packed 1-bit rows (set bits of each and of their AND, padding
 * bits past the width left out), with the popcnt instruction where the CPU has AVX2.
 *
 * Only the buffer protocol is used (1-D or 2-D buffers with contiguous rows at any row stride,
 * native byte order); the Python side checks dtypes and falls back to NumPy for anything else. Exactness: counts are
 * 64-bit integers of 0/1 terms; the per-chunk 32-bit partial sums never exceed CHUNK.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CHUNK 65536 /* pixels summed in 32-bit lanes before they are added to the totals */

typedef struct {
    int always, never; /* the threshold admits every value, or none */
    unsigned t;        /* else: value >= t (then flipped for a low rule) */
    int low;           /* 1 for a low rule: a member is value < threshold */
} rule_t;

static int make_rule(long long threshold, int high, unsigned maxval, rule_t *r) {
    r->low = !high;
    r->always = threshold <= 0;
    r->never = threshold > (long long)maxval;
    r->t = r->always ? 0u : (r->never ? maxval : (unsigned)threshold);
    return 0;
}

/* In one pass: pixels with body >= tb, with dye >= td, and with both. */
#define PAIR_LOOP(TB, TD, b, d, n, tb, td, gb, gd, gbd)                                        \
    do {                                                                                       \
        uint64_t _sb = 0, _sd = 0, _sbd = 0;                                                   \
        const TB _tb = (TB)(tb);                                                               \
        const TD _td = (TD)(td);                                                               \
        for (Py_ssize_t _c = 0; _c < (n); _c += CHUNK) {                                       \
            Py_ssize_t _e = (n) - _c < CHUNK ? (n) - _c : CHUNK;                               \
            const TB *_pb = (b) + _c;                                                          \
            const TD *_pd = (d) + _c;                                                          \
            uint32_t _xb = 0, _xd = 0, _xbd = 0;                                               \
            for (Py_ssize_t _i = 0; _i < _e; _i++) {                                           \
                uint32_t _mb = _pb[_i] >= _tb, _md = _pd[_i] >= _td;                           \
                _xb += _mb;                                                                    \
                _xd += _md;                                                                    \
                _xbd += _mb & _md;                                                             \
            }                                                                                  \
            _sb += _xb;                                                                        \
            _sd += _xd;                                                                        \
            _sbd += _xbd;                                                                      \
        }                                                                                      \
        (gb) = _sb;                                                                            \
        (gd) = _sd;                                                                            \
        (gbd) = _sbd;                                                                          \
    } while (0)

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE2 1

/* Horizontal sum of the 16 byte counters of acc (each at most 255). */
static inline uint64_t sum_u8x16(__m128i acc) {
    __m128i s = _mm_sad_epu8(acc, _mm_setzero_si128());
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}

/* uint8 planes: v >= t is max(v, t) == v. Counters are bytes, emptied every 255 vectors. */
static Py_ssize_t pair_ge_u8_sse2(const uint8_t *b, const uint8_t *d, Py_ssize_t n, uint8_t tb,
                                  uint8_t td, uint64_t *gb, uint64_t *gd, uint64_t *gbd) {
    const __m128i vtb = _mm_set1_epi8((char)tb), vtd = _mm_set1_epi8((char)td);
    Py_ssize_t i = 0, vecs = n / 16;
    while (vecs > 0) {
        Py_ssize_t run = vecs < 255 ? vecs : 255;
        __m128i ab = _mm_setzero_si128(), ad = ab, abd = ab;
        for (Py_ssize_t k = 0; k < run; k++, i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(b + i));
            __m128i y = _mm_loadu_si128((const __m128i *)(d + i));
            __m128i mb = _mm_cmpeq_epi8(_mm_max_epu8(x, vtb), x); /* 0xFF where x >= tb */
            __m128i md = _mm_cmpeq_epi8(_mm_max_epu8(y, vtd), y);
            ab = _mm_sub_epi8(ab, mb);
            ad = _mm_sub_epi8(ad, md);
            abd = _mm_sub_epi8(abd, _mm_and_si128(mb, md));
        }
        *gb += sum_u8x16(ab);
        *gd += sum_u8x16(ad);
        *gbd += sum_u8x16(abd);
        vecs -= run;
    }
    return i; /* pixels done; the caller counts the rest */
}

/* uint16 planes: v >= t (t >= 1) is (v ^ 0x8000) > ((t - 1) ^ 0x8000) as signed 16-bit values.
 * Counters are 16-bit lanes holding 0/-1 sums, emptied every 32767 vectors. */
static inline uint64_t sum_i16x8_neg(__m128i acc) {
    /* lanes hold -count; widen to 32 bits and add */
    __m128i lo = _mm_srai_epi32(_mm_unpacklo_epi16(acc, acc), 16);
    __m128i hi = _mm_srai_epi32(_mm_unpackhi_epi16(acc, acc), 16);
    __m128i s = _mm_add_epi32(lo, hi);
    int32_t out[4];
    _mm_storeu_si128((__m128i *)out, s);
    return (uint64_t)(-((int64_t)out[0] + out[1] + out[2] + out[3]));
}

static Py_ssize_t pair_ge_u16_sse2(const uint16_t *b, const uint16_t *d, Py_ssize_t n,
                                   uint16_t tb, uint16_t td, uint64_t *gb, uint64_t *gd,
                                   uint64_t *gbd) {
    if (tb == 0 || td == 0) return 0; /* "every value": left to the generic loop */
    const __m128i flip = _mm_set1_epi16((short)0x8000);
    const __m128i vtb = _mm_set1_epi16((short)((tb - 1) ^ 0x8000));
    const __m128i vtd = _mm_set1_epi16((short)((td - 1) ^ 0x8000));
    Py_ssize_t i = 0, vecs = n / 8;
    while (vecs > 0) {
        Py_ssize_t run = vecs < 32767 ? vecs : 32767;
        __m128i ab = _mm_setzero_si128(), ad = ab, abd = ab;
        for (Py_ssize_t k = 0; k < run; k++, i += 8) {
            __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(b + i)), flip);
            __m128i y = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(d + i)), flip);
            __m128i mb = _mm_cmpgt_epi16(x, vtb);
            __m128i md = _mm_cmpgt_epi16(y, vtd);
            ab = _mm_add_epi16(ab, mb);
            ad = _mm_add_epi16(ad, md);
            abd = _mm_add_epi16(abd, _mm_and_si128(mb, md));
        }
        *gb += sum_i16x8_neg(ab);
        *gd += sum_i16x8_neg(ad);
        *gbd += sum_i16x8_neg(abd);
        vecs -= run;
    }
    return i;
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2 1

/* The two kernels above on 32-byte vectors, for CPUs that have AVX2 (chosen at import). */
__attribute__((target("avx2"))) static inline uint64_t sum_u8x32(__m256i acc) {
    __m256i s = _mm256_sad_epu8(acc, _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (uint64_t)_mm_cvtsi128_si64(t) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(t, t));
}

__attribute__((target("avx2"))) static Py_ssize_t pair_ge_u8_avx2(
    const uint8_t *b, const uint8_t *d, Py_ssize_t n, uint8_t tb, uint8_t td, uint64_t *gb,
    uint64_t *gd, uint64_t *gbd) {
    const __m256i vtb = _mm256_set1_epi8((char)tb), vtd = _mm256_set1_epi8((char)td);
    Py_ssize_t i = 0, vecs = n / 32;
    while (vecs > 0) {
        Py_ssize_t run = vecs < 255 ? vecs : 255;
        __m256i ab = _mm256_setzero_si256(), ad = ab, abd = ab;
        for (Py_ssize_t k = 0; k < run; k++, i += 32) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + i));
            __m256i y = _mm256_loadu_si256((const __m256i *)(d + i));
            __m256i mb = _mm256_cmpeq_epi8(_mm256_max_epu8(x, vtb), x);
            __m256i md = _mm256_cmpeq_epi8(_mm256_max_epu8(y, vtd), y);
            ab = _mm256_sub_epi8(ab, mb);
            ad = _mm256_sub_epi8(ad, md);
            abd = _mm256_sub_epi8(abd, _mm256_and_si256(mb, md));
        }
        *gb += sum_u8x32(ab);
        *gd += sum_u8x32(ad);
        *gbd += sum_u8x32(abd);
        vecs -= run;
    }
    return i;
}

__attribute__((target("avx2"))) static inline uint64_t sum_i16x16_neg(__m256i acc) {
    __m256i w = _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); /* pairs of lanes, 32-bit */
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    int32_t out[4];
    _mm_storeu_si128((__m128i *)out, t);
    return (uint64_t)(-((int64_t)out[0] + out[1] + out[2] + out[3]));
}

__attribute__((target("avx2"))) static Py_ssize_t pair_ge_u16_avx2(
    const uint16_t *b, const uint16_t *d, Py_ssize_t n, uint16_t tb, uint16_t td, uint64_t *gb,
    uint64_t *gd, uint64_t *gbd) {
    const __m256i vtb = _mm256_set1_epi16((short)tb), vtd = _mm256_set1_epi16((short)td);
    Py_ssize_t i = 0, vecs = n / 16;
    while (vecs > 0) {
        Py_ssize_t run = vecs < 16383 ? vecs : 16383;
        __m256i ab = _mm256_setzero_si256(), ad = ab, abd = ab;
        for (Py_ssize_t k = 0; k < run; k++, i += 16) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + i));
            __m256i y = _mm256_loadu_si256((const __m256i *)(d + i));
            __m256i mb = _mm256_cmpeq_epi16(_mm256_max_epu16(x, vtb), x);
            __m256i md = _mm256_cmpeq_epi16(_mm256_max_epu16(y, vtd), y);
            ab = _mm256_add_epi16(ab, mb);
            ad = _mm256_add_epi16(ad, md);
            abd = _mm256_add_epi16(abd, _mm256_and_si256(mb, md));
        }
        *gb += sum_i16x16_neg(ab);
        *gd += sum_i16x16_neg(ad);
        *gbd += sum_i16x16_neg(abd);
        vecs -= run;
    }
    return i;
}

#endif

/* The vector kernels in use: 2 AVX2, 1 SSE2, 0 the plain loop; the best the CPU has, at import. */
static int level, best_level;
static const char *const level_names[] = {"scalar", "sse2", "avx2"};

static void count_pair_ge(const void *b, int bsize, const void *d, int dsize, Py_ssize_t n,
                          unsigned tb, unsigned td, uint64_t *gb, uint64_t *gd, uint64_t *gbd) {
    Py_ssize_t done = 0;
    *gb = *gd = *gbd = 0;
    int vectors = 0; /* a vector kernel ran */
#ifdef HAVE_AVX2
    if (level >= 2 && bsize == dsize) {
        vectors = 1;
        if (bsize == 1)
            done = pair_ge_u8_avx2(b, d, n, (uint8_t)tb, (uint8_t)td, gb, gd, gbd);
        else
            done = pair_ge_u16_avx2(b, d, n, (uint16_t)tb, (uint16_t)td, gb, gd, gbd);
    }
#endif
#ifdef HAVE_SSE2
    if (!vectors && level >= 1 && bsize == dsize) {
        if (bsize == 1)
            done = pair_ge_u8_sse2(b, d, n, (uint8_t)tb, (uint8_t)td, gb, gd, gbd);
        else
            done = pair_ge_u16_sse2(b, d, n, (uint16_t)tb, (uint16_t)td, gb, gd, gbd);
    }
#endif
    (void)vectors;
    uint64_t rb, rd, rbd;
    const char *bt = (const char *)b + done * bsize, *dt = (const char *)d + done * dsize;
    n -= done;
    if (bsize == 1 && dsize == 1)
        PAIR_LOOP(uint8_t, uint8_t, (const uint8_t *)bt, (const uint8_t *)dt, n, tb, td, rb, rd,
                  rbd);
    else if (bsize == 1)
        PAIR_LOOP(uint8_t, uint16_t, (const uint8_t *)bt, (const uint16_t *)dt, n, tb, td, rb,
                  rd, rbd);
    else if (dsize == 1)
        PAIR_LOOP(uint16_t, uint8_t, (const uint16_t *)bt, (const uint8_t *)dt, n, tb, td, rb,
                  rd, rbd);
    else
        PAIR_LOOP(uint16_t, uint16_t, (const uint16_t *)bt, (const uint16_t *)dt, n, tb, td, rb,
                  rd, rbd);
    *gb += rb;
    *gd += rd;
    *gbd += rbd;
}

/* Rows of a buffer: 1-D, or 2-D with contiguous rows at any row stride (a tile cropped to the
 * image is a view with a longer stride than its rows). C-contiguous rows become one long row. */
typedef struct {
    const char *p;
    Py_ssize_t rows, cols, stride; /* cols in items, stride in bytes */
    int itemsize;
} rows_t;

static int get_rows(PyObject *obj, int itemsize, Py_buffer *view, rows_t *r, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES) < 0) return -1;
    const char *why = NULL;
    if (view->itemsize != itemsize)
        why = "items of the wrong size";
    else if (view->ndim == 1 && view->strides[0] == itemsize) {
        r->rows = 1;
        r->cols = view->shape[0];
    } else if (view->ndim == 2 && view->strides[1] == itemsize) {
        r->rows = view->shape[0];
        r->cols = view->shape[1];
    } else
        why = "not 1-D or 2-D with contiguous rows";
    if (why) {
        PyErr_Format(PyExc_ValueError, "%s: %s (itemsize %zd, %d dimensions)", name, why,
                     view->itemsize, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    r->itemsize = itemsize;
    r->p = (const char *)view->buf;
    r->stride = view->ndim == 2 ? view->strides[0] : r->cols * itemsize;
    if (r->rows > 1 && r->stride == r->cols * itemsize) { /* one long row */
        r->cols *= r->rows;
        r->rows = 1;
    }
    return 0;
}

/* Both inputs' rows, walked the same way: when one is one long row and the other strided rows,
 * the long row is cut into rows of the other's length. Releases both views on error. */
static int get_pair(PyObject *bobj, int bsize, PyObject *dobj, int dsize, Py_buffer *bv,
                    Py_buffer *dv, rows_t *br, rows_t *dr) {
    if (get_rows(bobj, bsize, bv, br, "body") < 0) return -1;
    if (get_rows(dobj, dsize, dv, dr, "dye") < 0) {
        PyBuffer_Release(bv);
        return -1;
    }
    int ok = br->rows * br->cols == dr->rows * dr->cols;
    if (ok && br->rows != dr->rows) {
        rows_t *one = br->rows == 1 ? br : dr, *many = br->rows == 1 ? dr : br;
        ok = one->rows == 1;
        one->rows = many->rows;
        one->cols = many->cols;
        one->stride = many->cols * one->itemsize;
    }
    ok = ok && br->cols == dr->cols;
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "body has %zd pixels and dye %zd, or other rows",
                     br->rows * br->cols, dr->rows * dr->cols);
        PyBuffer_Release(bv);
        PyBuffer_Release(dv);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(count_pair_doc,
"count_pair(body, body_bits, body_threshold, body_high, dye, dye_bits, dye_threshold, dye_high)\n"
"    -> (body, dye_in_body, dye)\n\n"
"Members of two planes of native uint8 (bits=8) or uint16 (bits=16) values (1-D, or 2-D with\n"
"contiguous rows) of the same pixels, and the pixels that are members of both, from one pass\n"
"over each.\n"
"A member is value >= threshold when high, value < threshold otherwise.");

static PyObject *count_pair(PyObject *self, PyObject *args) {
    PyObject *bobj, *dobj;
    int bbits, dbits, bhigh, dhigh;
    long long bt, dt;
    Py_buffer bv, dv;
    rows_t brows, drows;
    rule_t br, dr;
    uint64_t ge_b = 0, ge_d = 0, ge_bd = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OiLpOiLp", &bobj, &bbits, &bt, &bhigh, &dobj, &dbits, &dt,
                          &dhigh))
        return NULL;
    if ((bbits != 8 && bbits != 16) || (dbits != 8 && dbits != 16)) {
        PyErr_Format(PyExc_ValueError, "bits must be 8 or 16, not %d and %d", bbits, dbits);
        return NULL;
    }
    if (get_pair(bobj, bbits / 8, dobj, dbits / 8, &bv, &dv, &brows, &drows) < 0) return NULL;
    Py_ssize_t n = brows.rows * brows.cols;
    make_rule(bt, bhigh, bbits == 8 ? 0xFFu : 0xFFFFu, &br);
    make_rule(dt, dhigh, dbits == 8 ? 0xFFu : 0xFFFFu, &dr);
    /* A threshold that admits no value is counted as one that admits all (t = 0), then its
     * side and the pixels of both are set to none. */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t row = 0; row < brows.rows; row++) {
        uint64_t gb, gd, gbd;
        count_pair_ge(brows.p + row * brows.stride, bbits / 8, drows.p + row * drows.stride,
                      dbits / 8, brows.cols, br.never ? 0u : br.t, dr.never ? 0u : dr.t, &gb,
                      &gd, &gbd);
        ge_b += gb;
        ge_d += gd;
        ge_bd += gbd;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bv);
    PyBuffer_Release(&dv);
    if (br.never) ge_b = ge_bd = 0;
    if (dr.never) ge_d = ge_bd = 0;
    /* ">= t" on both sides; the low rules follow by inclusion-exclusion. */
    uint64_t un = (uint64_t)n;
    uint64_t nb = br.low ? un - ge_b : ge_b;
    uint64_t nd = dr.low ? un - ge_d : ge_d;
    uint64_t both;
    if (!br.low && !dr.low)
        both = ge_bd;
    else if (!dr.low) /* body < tb, dye >= td */
        both = ge_d - ge_bd;
    else if (!br.low) /* body >= tb, dye < td */
        both = ge_b - ge_bd;
    else
        both = un - ge_b - ge_d + ge_bd;
    return Py_BuildValue("KKK", (unsigned long long)nb, (unsigned long long)both,
                         (unsigned long long)nd);
}

/* Set bits of b, of d and of b & d over n bytes, 8 bytes a step. */
#define POPCOUNT_LOOP(b, d, n, gb, gd, gbd)                                                    \
    do {                                                                                       \
        Py_ssize_t _i = 0;                                                                     \
        uint64_t _sb = 0, _sd = 0, _sbd = 0;                                                   \
        for (; _i + 8 <= (n); _i += 8) {                                                       \
            uint64_t _x, _y;                                                                   \
            memcpy(&_x, (b) + _i, 8);                                                          \
            memcpy(&_y, (d) + _i, 8);                                                          \
            _sb += (uint64_t)__builtin_popcountll(_x);                                         \
            _sd += (uint64_t)__builtin_popcountll(_y);                                         \
            _sbd += (uint64_t)__builtin_popcountll(_x & _y);                                   \
        }                                                                                      \
        for (; _i < (n); _i++) {                                                               \
            _sb += (uint64_t)__builtin_popcount((b)[_i]);                                      \
            _sd += (uint64_t)__builtin_popcount((d)[_i]);                                      \
            _sbd += (uint64_t)__builtin_popcount((b)[_i] & (d)[_i]);                           \
        }                                                                                      \
        (gb) += _sb;                                                                           \
        (gd) += _sd;                                                                           \
        (gbd) += _sbd;                                                                         \
    } while (0)

static void popcount_plain(const uint8_t *b, const uint8_t *d, Py_ssize_t n, uint64_t *gb,
                           uint64_t *gd, uint64_t *gbd) {
    POPCOUNT_LOOP(b, d, n, *gb, *gd, *gbd);
}

#ifdef HAVE_AVX2
/* The same with the CPU's popcnt instruction (every AVX2 CPU has it). */
__attribute__((target("popcnt"))) static void popcount_hw(const uint8_t *b, const uint8_t *d,
                                                          Py_ssize_t n, uint64_t *gb,
                                                          uint64_t *gd, uint64_t *gbd) {
    POPCOUNT_LOOP(b, d, n, *gb, *gd, *gbd);
}
#endif

PyDoc_STRVAR(count_bits_doc,
"count_bits(body, dye, width) -> (body_bits, dye_bits, both_bits)\n\n"
"Set bits of two blocks of packed rows (uint8, most significant bit first, 1-D or 2-D with\n"
"contiguous rows of ceil(width / 8) bytes), of each and of their AND, over the first width\n"
"pixels of every row: padding bits past the width never count.");

static PyObject *count_bits(PyObject *self, PyObject *args) {
    PyObject *bobj, *dobj;
    Py_ssize_t width;
    Py_buffer bv, dv;
    rows_t brows, drows;
    uint64_t gb = 0, gd = 0, gbd = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOn", &bobj, &dobj, &width)) return NULL;
    if (width < 1) {
        PyErr_Format(PyExc_ValueError, "width must be at least 1, not %zd", width);
        return NULL;
    }
    if (get_pair(bobj, 1, dobj, 1, &bv, &dv, &brows, &drows) < 0) return NULL;
    Py_ssize_t row_bytes = (width + 7) / 8;
    Py_ssize_t total = brows.rows * brows.cols;
    if ((total % row_bytes) || (brows.rows > 1 && brows.cols != row_bytes)) {
        PyErr_Format(PyExc_ValueError, "rows are not %zd bytes (width %zd)", row_bytes, width);
        PyBuffer_Release(&bv);
        PyBuffer_Release(&dv);
        return NULL;
    }
    int tail = (int)(width % 8); /* valid bits of a row's last byte, or 0 when all 8 are */
    if (tail && brows.rows == 1) { /* cut one long row into rows: padding is per row */
        brows.rows = drows.rows = total / row_bytes;
        brows.cols = drows.cols = row_bytes;
        brows.stride = drows.stride = row_bytes;
    }
    void (*pop)(const uint8_t *, const uint8_t *, Py_ssize_t, uint64_t *, uint64_t *,
                uint64_t *) = popcount_plain;
#ifdef HAVE_AVX2
    if (level >= 2) pop = popcount_hw;
#endif
    const uint8_t keep = (uint8_t)(0xFF00u >> (tail ? tail : 8)); /* valid bits, high first */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t row = 0; row < brows.rows; row++) {
        const uint8_t *bp = (const uint8_t *)(brows.p + row * brows.stride);
        const uint8_t *dp = (const uint8_t *)(drows.p + row * drows.stride);
        Py_ssize_t full = tail ? brows.cols - 1 : brows.cols;
        pop(bp, dp, full, &gb, &gd, &gbd);
        if (tail) {
            uint8_t x = bp[full] & keep, y = dp[full] & keep;
            gb += (uint64_t)__builtin_popcount(x);
            gd += (uint64_t)__builtin_popcount(y);
            gbd += (uint64_t)__builtin_popcount(x & y);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bv);
    PyBuffer_Release(&dv);
    return Py_BuildValue("KKK", (unsigned long long)gb, (unsigned long long)gd,
                         (unsigned long long)gbd);
}

static PyObject *vectors(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(level_names[level]);
}

static PyObject *set_vectors(PyObject *self, PyObject *args) {
    const char *name;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            if (i > best_level) {
                PyErr_Format(PyExc_ValueError, "this CPU or build has no %s kernel", name);
                return NULL;
            }
            level = i;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown kernel %s (scalar, sse2 or avx2)", name);
    return NULL;
}

static PyMethodDef methods[] = {
    {"vectors", vectors, METH_NOARGS, "The vector kernels in use: avx2, sse2 or scalar."},
    {"_set_vectors", set_vectors, METH_VARARGS,
     "Use the named kernels (scalar, sse2, avx2) from now on; for tests."},
    {"count_pair", count_pair, METH_VARARGS, count_pair_doc},
    {"count_bits", count_bits, METH_VARARGS, count_bits_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_count",
    "One-pass counting of planes for the CPU engine (see dragon_gpu.engines.native).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cpu_count(void) {
#ifdef HAVE_SSE2
    best_level = 1;
#endif
#ifdef HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) best_level = 2;
#endif
    level = best_level;
    return PyModule_Create(&module);
}
