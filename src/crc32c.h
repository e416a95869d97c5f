/* crc32c.h - CRC-32C (Castagnoli, the polynomial of iSCSI, ext4 and
 * LevelDB logs): the checksum of every state store record. */
#ifndef RF_CRC32C_H
#define RF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue the CRC <crc> (0 to start) over <n> bytes at <p>. The value is
 * the standard one: crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
