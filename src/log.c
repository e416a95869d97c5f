/* log.c - structured logging: one write(2) per line so threads never
 * interleave, and a buffered access log that writes in large blocks. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "common.h"
#include "log.h"
#include "logring.h"

int rf_log_level = LOG_INFO;
int rf_access_log_fd = -1;
static int log_fd = 2;
static _Thread_local int log_worker = -1;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Open <path> and make it the file behind descriptor <fd>. Other threads
 * keep writing to <fd> while this runs: dup2() swaps the open file under
 * the same number atomically, so a write lands in the old file or the new
 * one, never in a closed or reused descriptor (close + reopen would let a
 * worker write into whatever the kernel handed out next). */
static int reopen_onto(int fd, const char *path)
{
	int nfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int ret = 0;

	if (nfd < 0)
		return -errno;
	if (dup3(nfd, fd, O_CLOEXEC) < 0)
		ret = -errno;
	close(nfd);
	return ret;
}

int log_open(const char *path)
{
	int fd;

	if (!path)
		return 0;
	if (log_fd > 2)
		return reopen_onto(log_fd, path);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	log_fd = fd;
	return 0;
}

void log_set_thread(int worker)
{
	log_worker = worker;
}

static void log_vwrite(int level, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	if (log_worker >= 0)
		n += snprintf(line + n, sizeof(line) - n, "worker=%d ", log_worker);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += RF_MIN((size_t)m, sizeof(line) - n - 2);
	logring_push(level, line, (size_t)n);       /* for GET /logs and the dashboard */
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0) {
		/* nowhere left to report a failing log */
	}
}

void rf_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > rf_log_level)
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void rf_log_limited(struct log_ratelimit *rl, int level, const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	if (level > rf_log_level)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if ((uint64_t)ts.tv_sec == rl->last_sec) {
		rl->suppressed++;
		return;
	}
	rl->last_sec = ts.tv_sec;
	if (rl->suppressed) {
		rf_log(level, "msg=\"previous message suppressed\" count=%llu",
		       (unsigned long long)rl->suppressed);
		rl->suppressed = 0;
	}
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

int access_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

int access_log_reopen(const char *path)
{
	if (rf_access_log_fd < 0 || !path)
		return 0;
	return reopen_onto(rf_access_log_fd, path);
}

void access_log_flush(struct access_log *al)
{
	if (al->fd >= 0 && al->len) {
		if (write(al->fd, al->buf, al->len) < 0) {
			/* the access log is best effort; the request succeeded */
		}
	}
	al->len = 0;
}

void access_log_append(struct access_log *al, const char *line, size_t len)
{
	if (al->fd < 0)
		return;
	if (al->len + len > sizeof(al->buf))
		access_log_flush(al);
	if (len > sizeof(al->buf))
		len = sizeof(al->buf);
	memcpy(al->buf + al->len, line, len);
	al->len += len;
}
