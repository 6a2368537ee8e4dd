// Packed bits x packed bits: 64-bit words, __popcll, 16-byte loads.
//
// Rows of packed bits are ceil(width / 8) bytes long, generally not a multiple of 8, so the
// kernel does not walk rows: it walks the block as one flat run of bytes in 16-byte vectors
// (aligned, since the buffer is) and masks, in each 64-bit word, the padding bits of every row
// that ends inside it and the bytes past the end of the block.

#include "common.cuh"

// Mask of the bits of the 64-bit word holding bytes [first, first + 8) of a block of `nbytes`
// bytes made of rows of `row_bytes` bytes, whose last byte ends with `pad` (0..7) padding bits.
// Byte j of the word is bits 8j .. 8j+7 (little-endian loads); pixels are most significant bit
// first, so a row's padding bits are the `pad` low bits of its last byte.
__device__ __forceinline__ u64 valid_bits(u32 first, u32 nbytes, u32 row_bytes, u32 pad) {
    u64 mask = ~0ull;
    if (pad) {
        const u64 pad_bits = (1ull << pad) - 1ull;
        // The first byte at or after `first` that ends a row, then one every row_bytes bytes.
        for (u32 end = first + (row_bytes - 1u - first % row_bytes); end < first + 8u;
             end += row_bytes)
            mask &= ~(pad_bits << (8u * (end - first)));
    }
    if (first + 8u > nbytes) {
        const u32 keep = nbytes > first ? nbytes - first : 0u;  // bytes of the word in the block
        mask &= keep ? ~0ull >> (64u - 8u * keep) : 0ull;
    }
    return mask;
}

// Bytes [first, min(first + 8, nbytes)) as a little-endian word, zero past the end: the tail of
// a block is read byte by byte so the kernel never reads past the block.
__device__ __forceinline__ u64 tail_word(const unsigned char* __restrict__ p, u32 first,
                                         u32 nbytes) {
    u64 word = 0;
    for (u32 j = 0; j < 8u && first + j < nbytes; ++j) word |= (u64)p[first + j] << (8u * j);
    return word;
}

__device__ __forceinline__ void add_word(u64 body, u64 dye, u64 mask, u64 body_flip,
                                         u64 dye_flip, u64& n_body, u64& n_dye, u64& n_both) {
    body = (body ^ body_flip) & mask;
    dye = (dye ^ dye_flip) & mask;
    n_body += __popcll(body);
    n_dye += __popcll(dye);
    n_both += __popcll(body & dye);
}

COUNT_KERNEL(count_packed_packed) {
    const unsigned char* b = static_cast<const unsigned char*>(body);
    const unsigned char* d = static_cast<const unsigned char*>(dye);
    const u32 row_bytes = (width + 7u) / 8u;
    const u32 pad = 8u * row_bytes - width;
    const u32 nbytes = rows * row_bytes;
    // Where a clear bit is a member, flip every bit first; the mask then drops the padding.
    const u64 body_flip = body_high ? 0ull : ~0ull;
    const u64 dye_flip = dye_high ? 0ull : ~0ull;
    const uint4* b4 = reinterpret_cast<const uint4*>(b);
    const uint4* d4 = reinterpret_cast<const uint4*>(d);
    const u32 vectors = nbytes / 16u;
    u64 n_body = 0, n_dye = 0, n_both = 0;
    for (u32 i = global_thread(); i < vectors; i += global_stride()) {
        const uint4 bv = b4[i];
        const uint4 dv = d4[i];
        const u32 first = 16u * i;
        add_word(bv.x | ((u64)bv.y << 32), dv.x | ((u64)dv.y << 32),
                 valid_bits(first, nbytes, row_bytes, pad), body_flip, dye_flip,
                 n_body, n_dye, n_both);
        add_word(bv.z | ((u64)bv.w << 32), dv.z | ((u64)dv.w << 32),
                 valid_bits(first + 8u, nbytes, row_bytes, pad), body_flip, dye_flip,
                 n_body, n_dye, n_both);
    }
    if (global_thread() == 0) {  // the last 0..15 bytes
        for (u32 first = 16u * vectors; first < nbytes; first += 8u)
            add_word(tail_word(b, first, nbytes), tail_word(d, first, nbytes),
                     valid_bits(first, nbytes, row_bytes, pad), body_flip, dye_flip,
                     n_body, n_dye, n_both);
    }
    block_add(n_body, n_dye, n_both, counters);
}
