/* log.h - structured key=value logging to stderr or log_file, and the
 * per-worker buffered access log. */
#ifndef RF_LOG_H
#define RF_LOG_H

#include <stdint.h>
#include <stddef.h>

enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int rf_log_level;

/* Open <path> (append) as the log destination; NULL keeps stderr.
 * Returns 0 or -errno. Also used to reopen after rotation: the new file
 * then takes the old one's descriptor number (see reopen_onto()). */
int log_open(const char *path);

/* Set the worker id printed on this thread's lines (-1 = main). */
void log_set_thread(int worker);

/* Write one line: "ts=… level=… worker=N msg="…" <kv>". <fmt> formats the
 * message; the caller appends key=value pairs inside it when useful. */
void rf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) rf_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  do { if (rf_log_level >= LOG_WARN) rf_log(LOG_WARN, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (rf_log_level >= LOG_INFO) rf_log(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (rf_log_level >= LOG_DEBUG) rf_log(LOG_DEBUG, __VA_ARGS__); } while (0)

/* At most one line per second per call site; the suppressed count is added
 * to the next line that gets through. */
struct log_ratelimit {
	uint64_t last_sec;
	uint64_t suppressed;
};

void rf_log_limited(struct log_ratelimit *rl, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Access log: each worker appends lines to its own buffer, which is written
 * out when full or by access_log_flush() once a second. */
struct access_log {
	int fd;                 /* shared, owned by main; -1 = off */
	uint32_t len;
	char buf[64 * 1024];
};

/* The access log descriptor every worker writes to (-1 = off). */
extern int rf_access_log_fd;

int access_log_open(const char *path);     /* returns fd or -errno */

/* After rotation: open <path> again and put it behind rf_access_log_fd,
 * keeping the descriptor number the workers copied. Returns 0 or -errno. */
int access_log_reopen(const char *path);
void access_log_append(struct access_log *al, const char *line, size_t len);
void access_log_flush(struct access_log *al);

#endif
