// XXH3-128 for comparing content (see xxhash.c): streaming and one-shot, the digest in xxHash's canonical
// (big-endian) byte order.
#ifndef CAIRN_XXHASH_H
#define CAIRN_XXHASH_H
#include <stddef.h>

/// A new streaming state, or NULL when memory is short.
void *cairn_xxh128_new(void);
void cairn_xxh128_update(void *state, const void *data, size_t len);
/// Writes the digest of everything passed since the state was made or last finished, and starts over.
void cairn_xxh128_finish(void *state, unsigned char out[16]);
void cairn_xxh128_free(void *state);
/// The digest of one buffer.
void cairn_xxh128(const void *data, size_t len, unsigned char out[16]);

#endif
