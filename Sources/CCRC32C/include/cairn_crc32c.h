#ifndef CAIRN_CRC32C_H
#define CAIRN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Extends a CRC-32C (Castagnoli) over `len` bytes. Start with 0xFFFFFFFF and XOR the result with 0xFFFFFFFF
/// at the end, as PostgreSQL's INIT_CRC32C/FIN_CRC32C do. Uses the SSE 4.2 instruction where the CPU has it.
uint32_t cairn_crc32c_update(uint32_t crc, const void *data, size_t len);

#endif
