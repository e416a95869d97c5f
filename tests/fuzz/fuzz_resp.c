/* fuzz_resp.c - libFuzzer target for the Redis-protocol port: the RESP2 +
 * inline parser (resp.c) and the commands (resp_cmd.c) over a real cache
 * of two shards, so writes to the other worker's shard take the blocked
 * path (the target plays worker 1 and polls its shard when told to wait).
 *
 * The input is the byte stream a client sends. It runs twice, on two fresh
 * caches: once fed whole, once fed in random pieces with the replies taken
 * in random amounts. Checks: the output is a sequence of well-formed RESP
 * replies (simple lines without CR/LF, bulk lengths that match); there is
 * one reply per executed command (plus at most one protocol error); a
 * session never stalls (input left, the buffer takes none, and the session
 * still asks for input); both runs give the same replies and end the same
 * way. Limits are tight so the bounds are reached often. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "cache.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESP_NOW   1700000000000LL
#define RESP_OUTCAP (64u << 20)

struct rz_run {
	char *out;              /* every reply byte, in order (owned) */
	size_t out_len, out_cap;
	int closed;
	uint64_t commands;
};

static const struct resp_limits rz_lim = {
	.max_bulk = 512, .max_args = 64, .max_query = 2048, .max_out = 2048,
};

/* Length of the well-formed reply at <p, n>, 0 when it is not one. */
static size_t rz_reply(const char *p, size_t n, int depth)
{
	const char *cr;
	size_t line, i, k, used;
	long long v = 0;
	int neg = 0;

	if (!n || depth > 8)
		return 0;
	cr = memchr(p, '\r', n);
	if (!cr || (size_t)(cr - p) + 2 > n || cr[1] != '\n')
		return 0;
	line = (size_t)(cr - p) + 2;
	if (memchr(p, '\n', (size_t)(cr - p)))
		return 0;
	if (p[0] == '+' || p[0] == '-')
		return line;
	if (p[0] != ':' && p[0] != '$' && p[0] != '*')
		return 0;
	i = 1;
	if (i < (size_t)(cr - p) && p[i] == '-') {
		neg = 1;
		i++;
	}
	if (i == (size_t)(cr - p) || (size_t)(cr - p) - i > 19)
		return 0;
	for (; i < (size_t)(cr - p); i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (p[i] - '0');
	}
	if (p[0] == ':')
		return line;
	if (neg)
		return v == 1 ? line : 0;       /* $-1 / *-1 */
	if (p[0] == '$') {
		if ((size_t)v > n - line || n - line - (size_t)v < 2 ||
		    p[line + v] != '\r' || p[line + v + 1] != '\n')
			return 0;
		return line + (size_t)v + 2;
	}
	used = line;
	for (k = 0; k < (size_t)v; k++) {
		size_t r = rz_reply(p + used, n - used, depth + 1);

		if (!r)
			return 0;
		used += r;
	}
	return used;
}

/* Count the replies in <p, n>; every byte must belong to one. */
static uint64_t rz_count(const char *p, size_t n)
{
	uint64_t count = 0;
	size_t r;

	while (n) {
		r = rz_reply(p, n, 0);
		if (!r) {
			fprintf(stderr, "bad reply at: %.*s\n", (int)(n < 200 ? n : 200), p);
			FUZZ_CHECK(!"well-formed reply");
		}
		p += r;
		n -= r;
		count++;
	}
	return count;
}

static void rz_take(struct resp_sess *s, struct rz_run *run, uint64_t *rs)
{
	const char *o;
	size_t n;

	o = resp_out(s, &n);
	FUZZ_CHECK(n <= rz_lim.max_out);
	if (rs && n)
		n = 1 + fuzz_rand(rs) % n;      /* a short send */
	FUZZ_CHECK(run->out_len + n <= RESP_OUTCAP);   /* replies stay bounded */
	if (run->out_len + n > run->out_cap) {
		while (run->out_len + n > run->out_cap)
			run->out_cap *= 2;
		run->out = realloc(run->out, run->out_cap);
		FUZZ_CHECK(run->out != NULL);
	}
	memcpy(run->out + run->out_len, o, n);
	run->out_len += n;
	resp_out_consumed(s, n);
}

/* Drive one session until it wants input or closes. */
static int rz_drive(struct cache *c, struct resp_sess *s, struct rz_run *run, uint64_t *rs)
{
	int st, spins = 0;
	size_t n;

	for (;;) {
		st = resp_process(s, RESP_NOW);
		FUZZ_CHECK(st >= RESP_NEED_INPUT && st <= RESP_CLOSE);
		if (st == RESP_BLOCKED) {
			/* the other worker applies its queue; then we are woken */
			FUZZ_CHECK(++spins < 1000);
			cache_shard_poll(c, 0, RESP_NOW);
			cache_quiescent(c, 0);
			continue;
		}
		rz_take(s, run, rs);
		if (st == RESP_OUT_FULL)
			continue;
		if (st == RESP_CLOSE) {
			while (resp_out(s, &n), n)
				rz_take(s, run, rs);
			run->closed = 1;
		}
		cache_quiescent(c, 1);
		return st;
	}
}

static void rz_run(const uint8_t *d, size_t size, uint64_t *rs, struct rz_run *run)
{
	struct cache_conf cc = { .memory = 256 << 10, .max_object_size = 512, .nworkers = 2 };
	struct cache *c = NULL;
	struct resp_sess s;
	size_t pos = 0, piece, took;
	int st = RESP_NEED_INPUT;

	memset(run, 0, sizeof *run);
	run->out_cap = 4096;
	run->out = malloc(run->out_cap);
	FUZZ_CHECK(run->out && cache_create(&cc, &c) == 0);
	FUZZ_CHECK(resp_init(&s, c, 1, &rz_lim) == 0);
	while (pos < size && st != RESP_CLOSE) {
		piece = rs ? 1 + fuzz_rand(rs) % (size - pos) : size - pos;
		took = resp_feed(&s, (const char *)d + pos, piece);
		FUZZ_CHECK(took <= piece);
		pos += took;
		st = rz_drive(c, &s, run, rs);
		/* a session that takes nothing and still wants input is stuck */
		if (!took && st == RESP_NEED_INPUT)
			FUZZ_CHECK(!"stalled: input buffer full, no command runs");
	}
	/* the last replies, when short sends left some behind */
	while (resp_out(&s, &took), took)
		rz_take(&s, run, NULL);
	{
		struct cache_stats cs;

		cache_stats(c, &cs);    /* this run's own cache: its commands alone */
		run->commands = cs.commands;
	}
	resp_free(&s);
	cache_destroy(c);
}

static int rz_has_word(const uint8_t *d, size_t n, const char *w)
{
	size_t i, k = strlen(w);

	for (i = 0; i + k <= n; i++)
		if (fuzz_ieq((const char *)d + i, k, w))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rs = fuzz_seed(data, size), nrep;
	struct rz_run a, b;

	rz_run(data, size, NULL, &a);
	rz_run(data, size, &rs, &b);
	nrep = rz_count(a.out, a.out_len);
	FUZZ_CHECK(nrep >= a.commands && nrep <= a.commands + 1);
	FUZZ_CHECK(rz_count(b.out, b.out_len) == nrep || b.closed || a.closed);
	/* INFO reports sizes of buffers, which depend on how input came */
	if (!rz_has_word(data, size, "info")) {
		FUZZ_CHECK(a.closed == b.closed);
		FUZZ_CHECK(a.out_len == b.out_len && !memcmp(a.out, b.out, a.out_len));
	}
	free(a.out);
	free(b.out);
	return 0;
}
