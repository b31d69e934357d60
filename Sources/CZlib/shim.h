#ifndef TALLY_CZLIB_SHIM_H
#define TALLY_CZLIB_SHIM_H
#include <zlib.h>

// inflateInit2 is a macro, which Swift does not import: windowBits 15 + 32 accepts a gzip or a zlib header.
static inline int tally_inflate_init(z_streamp stream) {
    return inflateInit2(stream, 15 + 32);
}

#endif
