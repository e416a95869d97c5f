/* fuzz_rl_line.c - libFuzzer target for the rate limiter's line protocol,
 * rl_line_feed(): "<key>\n" -> "OK\n" | "ERROR\n".
 *
 * The input is what a client sends. It is fed whole with a roomy output
 * buffer, then in random pieces into a random small output buffer (taking
 * the answers out whenever the call stops early), then one byte at a time.
 * All three must produce the same answers and consume the same bytes; the
 * output holds nothing but "OK\n" and "ERROR\n"; the check function only
 * ever sees keys of 1..RL_LINE_MAX bytes without control bytes or CR; a
 * closing session takes no more input. A reference model of the protocol
 * gives the expected answers. */
#include <string.h>

#include "fuzz.h"
#include "ratelimit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Admit keys whose first byte is even: deterministic, both answers occur. */
static int rl_fz_check(void *arg, const char *key, size_t len)
{
	size_t i;

	(*(unsigned *)arg)++;
	FUZZ_CHECK(len >= 1 && len <= RL_LINE_MAX);
	for (i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)key[i] >= 0x20 && key[i] != 0x7f);
	return !(key[0] & 1);
}

struct rl_fz_run {
	char out[1 << 16];
	size_t out_len;
	size_t consumed;
	int closing;
	unsigned calls;
};

/* mode 0: whole; 1: random pieces + small output buffer; 2: bytes. */
static void rl_fz_run(const uint8_t *d, size_t n, int mode, uint64_t *rs, struct rl_fz_run *r)
{
	static struct rl_line ls;
	char buf[4096];
	size_t pos = 0, piece, cap, used, took;

	memset(&ls, 0, sizeof ls);
	r->out_len = r->consumed = 0;
	r->calls = 0;
	while (pos < n && !ls.closing) {
		piece = mode == 0 ? n - pos : mode == 2 ? 1 : 1 + fuzz_rand(rs) % (n - pos);
		cap = mode == 1 ? 6 + fuzz_rand(rs) % 40 : sizeof buf;
		used = 0;
		took = rl_line_feed(&ls, (const char *)d + pos, piece, buf, cap, &used,
				    rl_fz_check, &r->calls);
		FUZZ_CHECK(took <= piece && used <= cap);
		/* stops early only when the output is full or the session closes */
		if (took < piece)
			FUZZ_CHECK(ls.closing || cap - used < 6);
		FUZZ_CHECK(r->out_len + used <= sizeof r->out);
		memcpy(r->out + r->out_len, buf, used);
		r->out_len += used;
		pos += took;
	}
	r->consumed = pos;
	r->closing = ls.closing;
	if (ls.closing) {
		/* a closing session takes nothing more */
		size_t used2 = 0;

		FUZZ_CHECK(rl_line_feed(&ls, "a\n", 2, buf, sizeof buf, &used2, rl_fz_check,
					&r->calls) == 0 && used2 == 0);
	}
}

static int rl_fz_junk(unsigned char c)
{
	return (c < 0x20 && c != '\r') || c == 0x7f;
}

/* The protocol as documented in ratelimit.h, written the simple way. */
static void rl_fz_model(const uint8_t *d, size_t n, struct rl_fz_run *m)
{
	size_t i = 0, s, len;
	int bad;

	m->out_len = 0;
	m->closing = 0;
	while (i < n) {
		s = i;
		bad = 0;
		while (i < n && d[i] != '\n') {
			if (rl_fz_junk(d[i]) || i - s >= RL_LINE_MAX + 1) {
				bad = 1;
				break;
			}
			i++;
		}
		if (bad) {
			memcpy(m->out + m->out_len, "ERROR\n", 6);
			m->out_len += 6;
			m->closing = 1;
			return;
		}
		if (i == n)
			return;         /* an unfinished line waits */
		len = i - s;
		i++;
		if (len && d[s + len - 1] == '\r')
			len--;
		if (len > RL_LINE_MAX || memchr(d + s, '\r', len)) {
			memcpy(m->out + m->out_len, "ERROR\n", 6);
			m->out_len += 6;
			m->closing = 1;
			return;
		}
		if (len && !(d[s] & 1)) {
			memcpy(m->out + m->out_len, "OK\n", 3);
			m->out_len += 3;
		} else {
			memcpy(m->out + m->out_len, "ERROR\n", 6);
			m->out_len += 6;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rl_fz_run r[3], model;
	uint64_t rs = fuzz_seed(data, size);
	size_t i;
	int m;

	if (size > 16384)
		return 0;
	for (m = 0; m < 3; m++)
		rl_fz_run(data, size, m, &rs, &r[m]);
	for (m = 1; m < 3; m++) {
		FUZZ_CHECK(r[m].closing == r[0].closing && r[m].calls == r[0].calls);
		FUZZ_CHECK(r[m].out_len == r[0].out_len && !memcmp(r[m].out, r[0].out, r[0].out_len));
	}
	for (i = 0; i < r[0].out_len;) {
		if (!memcmp(r[0].out + i, "OK\n", 3) && i + 3 <= r[0].out_len)
			i += 3;
		else if (i + 6 <= r[0].out_len && !memcmp(r[0].out + i, "ERROR\n", 6))
			i += 6;
		else
			FUZZ_CHECK(!"answers are OK or ERROR lines");
	}
	rl_fz_model(data, size, &model);
	FUZZ_CHECK(model.closing == r[0].closing);
	FUZZ_CHECK(model.out_len == r[0].out_len && !memcmp(model.out, r[0].out, model.out_len));
	return 0;
}
