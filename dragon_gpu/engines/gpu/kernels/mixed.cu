// Packed bits x plane, both ways (body packed and dye a plane, or the reverse).
//
// One work item is one packed byte: up to 8 pixels of one row. Its row and first column come
// from the byte index (row r, byte j -> pixels 8j .. min(8j + 8, width) - 1), so packed rows of
// any width line up with the plane's rows, and the padding bits of a row's last byte are never
// looked at. The plane's values for those pixels are read one by one: a plane row starts at
// r * width values, not on any alignment.

#include "common.cuh"

template <typename T, bool BODY_PACKED>
__device__ __forceinline__ void count_mixed(const unsigned char* __restrict__ packed,
                                            const T* __restrict__ plane, u32 rows, u32 width,
                                            u32 packed_high, u32 plane_threshold,
                                            u32 plane_high, u64* counters) {
    const u32 row_bytes = (width + 7u) / 8u;
    const u32 items = rows * row_bytes;
    u64 n_body = 0, n_dye = 0, n_both = 0;
    for (u32 q = global_thread(); q < items; q += global_stride()) {
        const u32 r = q / row_bytes;
        const u32 c = 8u * (q - r * row_bytes);
        const u32 n = width - c < 8u ? width - c : 8u;
        const u32 pbits = packed_bits8(packed[q], packed_high, n);
        const u32 vbits = plane_bits(plane + (r * width + c), n, plane_threshold, plane_high);
        const u32 bb = BODY_PACKED ? pbits : vbits;
        const u32 db = BODY_PACKED ? vbits : pbits;
        n_body += __popc(bb);
        n_dye += __popc(db);
        n_both += __popc(bb & db);
    }
    block_add(n_body, n_dye, n_both, counters);
}

#define PACKED_PLANE(name, T)                                                                \
    COUNT_KERNEL(name) {                                                                     \
        (void)body_threshold;                                                                \
        count_mixed<T, true>(static_cast<const unsigned char*>(body),                        \
                             static_cast<const T*>(dye), rows, width, body_high,             \
                             dye_threshold, dye_high, counters);                             \
    }

#define PLANE_PACKED(name, T)                                                                \
    COUNT_KERNEL(name) {                                                                     \
        (void)dye_threshold;                                                                 \
        count_mixed<T, false>(static_cast<const unsigned char*>(dye),                        \
                              static_cast<const T*>(body), rows, width, dye_high,            \
                              body_threshold, body_high, counters);                          \
    }

PACKED_PLANE(count_packed_plane_u8, unsigned char)
PACKED_PLANE(count_packed_plane_u16, unsigned short)
PLANE_PACKED(count_plane_packed_u8, unsigned char)
PLANE_PACKED(count_plane_packed_u16, unsigned short)
