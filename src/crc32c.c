/* crc32c.c - CRC-32C in software, slicing by 8: eight 256-entry tables
 * built once, then eight bytes per step. State store records are small
 * and written at admin-API rates, so no CPU instruction is needed. */
#include <pthread.h>
#include "crc32c.h"

#define POLY 0x82f63b78u        /* 0x1edc6f41 reflected */

static uint32_t tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
	uint32_t c, i, k;

	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		tab[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			tab[k][i] = (tab[k - 1][i] >> 8) ^ tab[0][tab[k - 1][i] & 0xff];
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint32_t lo, hi;

	pthread_once(&tab_once, tab_init);
	crc = ~crc;
	for (; n && ((uintptr_t)s & 7); n--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *s++) & 0xff];
	for (; n >= 8; n -= 8, s += 8) {
		/* byte order independent: assemble the words by hand */
		lo = crc ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
			    (uint32_t)s[3] << 24);
		hi = (uint32_t)s[4] | (uint32_t)s[5] << 8 | (uint32_t)s[6] << 16 |
		     (uint32_t)s[7] << 24;
		crc = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff] ^ tab[5][(lo >> 16) & 0xff] ^
		      tab[4][lo >> 24] ^ tab[3][hi & 0xff] ^ tab[2][(hi >> 8) & 0xff] ^
		      tab[1][(hi >> 16) & 0xff] ^ tab[0][hi >> 24];
	}
	while (n--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *s++) & 0xff];
	return ~crc;
}
