/* logring.c - the in-memory ring of recent log lines (see logring.h). */
#include <pthread.h>
#include "common.h"
#include "logring.h"

static struct logring_line ring[LOGRING_LINES];
static uint64_t last_seq;               /* under lock */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Cut <n> so that a multi-byte UTF-8 character is never split. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	n = max;
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

void logring_push(int level, const char *line, size_t n)
{
	struct logring_line *l;

	n = utf8_cut(line, n, LOGRING_TEXT);
	pthread_mutex_lock(&lock);
	l = &ring[++last_seq & (LOGRING_LINES - 1)];
	l->seq = last_seq;
	l->level = level;
	l->len = (uint16_t)n;
	memcpy(l->text, line, n);
	pthread_mutex_unlock(&lock);
}

size_t logring_read(uint64_t after, struct logring_line *out, size_t max)
{
	uint64_t first, s;
	size_t k = 0;

	pthread_mutex_lock(&lock);
	first = last_seq >= LOGRING_LINES ? last_seq - LOGRING_LINES + 1 : 1;
	if (after + 1 > first)
		first = after + 1;
	if (max && last_seq >= first && last_seq - first + 1 > max)
		first = last_seq - max + 1;
	for (s = first; s <= last_seq && k < max; s++)
		out[k++] = ring[s & (LOGRING_LINES - 1)];
	pthread_mutex_unlock(&lock);
	return k;
}

uint64_t logring_last_seq(void)
{
	uint64_t s;

	pthread_mutex_lock(&lock);
	s = last_seq;
	pthread_mutex_unlock(&lock);
	return s;
}

void logring_clear(void)
{
	pthread_mutex_lock(&lock);
	last_seq = 0;
	memset(ring, 0, sizeof(ring));
	pthread_mutex_unlock(&lock);
}
