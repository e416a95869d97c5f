/* fuzz_chunked.c - libFuzzer target for the chunked framing tracker,
 * http_chunked_feed().
 *
 * The input is one chunked message body (plus whatever follows it). It is
 * fed three ways: whole, one byte at a time, and in random pieces with a
 * random span array size. All three must agree on the decoded data bytes,
 * the bytes consumed, done and error; every span lies inside the piece it
 * was reported for; a finished or failed tracker stays finished/failed and
 * consumes nothing more. The decoded data is also checked against a small
 * reference decoder for well-formed input. */
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ck_result {
	char *out;              /* decoded data bytes (owned) */
	size_t out_len;
	size_t consumed;        /* bytes before the end of the message or the error */
	int done;
	int err;
};

/* Feed <b, len> in pieces chosen by <rs> (piece 0 = whole, 1 = bytes). */
static void ck_run(const char *b, size_t len, int mode, uint64_t *rs, struct ck_result *res)
{
	struct http_chunked ck;
	struct http_span spans[64];
	unsigned ns, max_spans, i;
	size_t pos = 0, piece;
	ssize_t n;

	memset(res, 0, sizeof *res);
	res->out = malloc(len ? len : 1);
	if (!res->out)
		abort();
	http_chunked_init(&ck);
	FUZZ_CHECK(!ck.done);
	while (pos < len) {
		if (mode == 0)
			piece = len - pos;
		else if (mode == 1)
			piece = 1;
		else
			piece = 1 + fuzz_rand(rs) % (len - pos);
		max_spans = mode == 2 ? 1 + (unsigned)(fuzz_rand(rs) % 4) : 64;
		n = http_chunked_feed(&ck, b + pos, piece, spans, max_spans, &ns);
		FUZZ_CHECK(ns <= max_spans);
		for (i = 0; i < ns; i++) {
			FUZZ_CHECK(spans[i].len > 0);
			FUZZ_CHECK((size_t)spans[i].off + spans[i].len <= piece);
			if (n >= 0)
				FUZZ_CHECK((size_t)spans[i].off + spans[i].len <= (size_t)n);
			if (i)
				FUZZ_CHECK(spans[i].off >= spans[i - 1].off + spans[i - 1].len);
			memcpy(res->out + res->out_len, b + pos + spans[i].off, spans[i].len);
			res->out_len += spans[i].len;
			FUZZ_CHECK(res->out_len <= len);
		}
		if (n < 0) {
			FUZZ_CHECK(n == -EBADMSG);
			res->err = 1;
			/* a failed tracker stays failed */
			FUZZ_CHECK(http_chunked_feed(&ck, "0\r\n\r\n", 5, spans, 64, &ns) == -EBADMSG);
			return;
		}
		FUZZ_CHECK((size_t)n <= piece);
		pos += (size_t)n;
		if (ck.done) {
			res->done = 1;
			res->consumed = pos;
			FUZZ_CHECK(http_chunked_feed(&ck, "0\r\n\r\n", 5, spans, 64, &ns) == 0);
			FUZZ_CHECK(ns == 0 && ck.done);
			return;
		}
		/* without an end or an error, a short count means the spans ran out */
		if ((size_t)n < piece)
			FUZZ_CHECK(ns == max_spans);
		if (n == 0)
			FUZZ_CHECK(ns == max_spans);
	}
	res->consumed = pos;
}

/* The reference: RFC 9112 7.1 for plain input (size [;ext] CRLF data CRLF
 * ... 0 CRLF [trailers] CRLF). Returns 1 with the data when <b> starts
 * with a simple message (hex sizes, no extensions, no trailers), 0 when
 * it does not look simple (no judgement then). */
static int ck_reference(const char *b, size_t len, char *out, size_t *out_len, size_t *end)
{
	size_t p = 0, sz, nd;

	*out_len = 0;
	for (;;) {
		sz = 0;
		nd = 0;
		while (p < len && nd < 15 && strchr("0123456789abcdefABCDEF", b[p]) && b[p]) {
			char c = b[p++];

			sz = sz * 16 + (size_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
			nd++;
		}
		if (!nd || p + 2 > len || b[p] != '\r' || b[p + 1] != '\n')
			return 0;
		p += 2;
		if (!sz)
			break;
		if (sz > len - p || len - p - sz < 2 || b[p + sz] != '\r' || b[p + sz + 1] != '\n')
			return 0;
		memcpy(out + *out_len, b + p, sz);
		*out_len += sz;
		p += sz + 2;
	}
	if (p + 2 > len || b[p] != '\r' || b[p + 1] != '\n')
		return 0;
	*end = p + 2;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rs = fuzz_seed(data, size);
	struct ck_result r[3];
	char *b = fuzz_dup(data, size), *ref = malloc(size ? size : 1);
	size_t ref_len, ref_end;
	int m;

	if (!ref)
		abort();
	for (m = 0; m < 3; m++)
		ck_run(b, size, m, &rs, &r[m]);
	for (m = 1; m < 3; m++) {
		FUZZ_CHECK(r[m].err == r[0].err && r[m].done == r[0].done);
		FUZZ_CHECK(r[m].out_len == r[0].out_len);
		FUZZ_CHECK(!memcmp(r[m].out, r[0].out, r[0].out_len));
		if (!r[0].err)
			FUZZ_CHECK(r[m].consumed == r[0].consumed);
	}
	if (ck_reference(b, size, ref, &ref_len, &ref_end)) {
		FUZZ_CHECK(!r[0].err && r[0].done);
		FUZZ_CHECK(r[0].consumed == ref_end);
		FUZZ_CHECK(r[0].out_len == ref_len && !memcmp(r[0].out, ref, ref_len));
	}
	for (m = 0; m < 3; m++)
		free(r[m].out);
	free(ref);
	free(b);
	return 0;
}
