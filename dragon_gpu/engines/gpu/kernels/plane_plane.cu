// Plane x plane (uint8 or uint16 each): thresholds and polarities, 8 pixels a step.
//
// Plane rows are `width` values with no padding, so a block is one flat run of rows * width
// pixels and row edges do not matter. Each step reads 8 values of each image with one aligned
// 8-byte (uint8) or 16-byte (uint16) load; the last 0..7 pixels are read one by one.

#include "common.cuh"

template <typename TB, typename TD>
__device__ __forceinline__ void count_planes(const void* body, const void* dye, u32 rows,
                                             u32 width, u32 body_threshold, u32 body_high,
                                             u32 dye_threshold, u32 dye_high, u64* counters) {
    const TB* b = static_cast<const TB*>(body);
    const TD* d = static_cast<const TD*>(dye);
    const u32 pixels = rows * width;
    const u32 groups = pixels / 8u;
    u64 n_body = 0, n_dye = 0, n_both = 0;
    for (u32 g = global_thread(); g < groups; g += global_stride()) {
        const u32 bb = plane_bits8(b, g, body_threshold, body_high);
        const u32 db = plane_bits8(d, g, dye_threshold, dye_high);
        n_body += __popc(bb);
        n_dye += __popc(db);
        n_both += __popc(bb & db);
    }
    if (global_thread() == 0 && pixels % 8u) {
        const u32 first = 8u * groups;
        const u32 n = pixels - first;
        const u32 bb = plane_bits(b + first, n, body_threshold, body_high);
        const u32 db = plane_bits(d + first, n, dye_threshold, dye_high);
        n_body += __popc(bb);
        n_dye += __popc(db);
        n_both += __popc(bb & db);
    }
    block_add(n_body, n_dye, n_both, counters);
}

#define PLANE_PLANE(name, TB, TD)                                                            \
    COUNT_KERNEL(name) {                                                                     \
        count_planes<TB, TD>(body, dye, rows, width, body_threshold, body_high,              \
                             dye_threshold, dye_high, counters);                             \
    }

PLANE_PLANE(count_plane_plane_u8_u8, unsigned char, unsigned char)
PLANE_PLANE(count_plane_plane_u8_u16, unsigned char, unsigned short)
PLANE_PLANE(count_plane_plane_u16_u8, unsigned short, unsigned char)
PLANE_PLANE(count_plane_plane_u16_u16, unsigned short, unsigned short)
