// xxHash 0.8.1 by Yann Collet (BSD 2-Clause; its licence is at the top of xxhash.h), vendored unchanged from
// Debian's libxxhash-dev so that Cairn needs no further system library, behind the few calls Cairn makes. Cairn
// uses XXH3-128 to compare a delta restore's files on disk with a backup's (see FileFrames in CairnCore): rsync's
// default file checksum, many times faster than SHA-256.
#define XXH_INLINE_ALL
#include "xxhash.h"
#include "cairn_xxhash.h"

void *cairn_xxh128_new(void) {
    XXH3_state_t *s = XXH3_createState();
    if (s) XXH3_128bits_reset(s);
    return s;
}

void cairn_xxh128_update(void *state, const void *data, size_t len) {
    XXH3_128bits_update((XXH3_state_t *)state, data, len);
}

void cairn_xxh128_finish(void *state, unsigned char out[16]) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest((XXH3_state_t *)state));
    for (int i = 0; i < 16; i++) out[i] = c.digest[i];
    XXH3_128bits_reset((XXH3_state_t *)state);
}

void cairn_xxh128_free(void *state) { XXH3_freeState((XXH3_state_t *)state); }

void cairn_xxh128(const void *data, size_t len, unsigned char out[16]) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
    for (int i = 0; i < 16; i++) out[i] = c.digest[i];
}
