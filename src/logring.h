/* logring.h - the last log lines in memory, for GET /logs and the
 * dashboard: rf_log() copies every line it writes into a fixed ring
 * (LOGRING_LINES slots of LOGRING_TEXT bytes, no allocation). Log lines
 * are not on the request path, so a mutex guards the ring. */
#ifndef RF_LOGRING_H
#define RF_LOGRING_H

#include <stddef.h>
#include <stdint.h>

#define LOGRING_LINES 512       /* a power of two */
#define LOGRING_TEXT  480       /* longer lines are cut (at a UTF-8 boundary) */

struct logring_line {
	uint64_t seq;           /* 1 for the first line ever logged, +1 per line */
	int level;              /* LOG_ERROR .. LOG_DEBUG */
	uint16_t len;
	char text[LOGRING_TEXT];        /* no newline, not NUL-terminated */
};

/* Keep one line (<n> bytes, without its newline) logged at <level>. */
void logring_push(int level, const char *line, size_t n);

/* Copy up to <max> of the most recent lines with seq > <after> into <out>,
 * oldest first. Returns how many were copied. */
size_t logring_read(uint64_t after, struct logring_line *out, size_t max);

/* The seq of the newest line (0 when nothing was logged yet). */
uint64_t logring_last_seq(void);

/* Forget every line (tests). */
void logring_clear(void);

#endif
