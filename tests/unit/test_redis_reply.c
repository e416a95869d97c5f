/* test_redis_reply.c - the client-side RESP2 reply parser: every type,
 * nesting, replies cut at every byte, malformed input, limits, and the
 * command encoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "redis_reply.h"
#include "test.h"

static int parse_str(struct rr_reply *r, const char *s)
{
	return rr_parse(r, s, strlen(s));
}

static void test_scalars(void)
{
	struct rr_reply r = { 0 };

	CHECK_INT(parse_str(&r, "+OK\r\n"), 5);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.v[0].type, RR_STATUS);
	CHECK(rr_is(&r, 0, "ok"));
	CHECK_INT(parse_str(&r, "-NOSCRIPT No matching script\r\n"), 30);
	CHECK_INT(r.v[0].type, RR_ERROR);
	CHECK_MEM(r.v[0].p, (size_t)r.v[0].n, "NOSCRIPT No matching script");
	CHECK_INT(parse_str(&r, ":-42\r\n+next\r\n"), 6);
	CHECK_INT(r.v[0].type, RR_INT);
	CHECK_INT(r.v[0].n, -42);
	CHECK_INT(parse_str(&r, "$5\r\nhe\r\no\r\n"), 11);
	CHECK_INT(r.v[0].type, RR_BULK);
	CHECK_MEM(r.v[0].p, 5, "he\r\no");
	CHECK_INT(parse_str(&r, "$0\r\n\r\n"), 6);
	CHECK_INT(r.v[0].n, 0);
	CHECK_INT(parse_str(&r, "$-1\r\n"), 5);
	CHECK_INT(r.v[0].type, RR_NIL);
	CHECK_INT(parse_str(&r, "*-1\r\n"), 5);
	CHECK_INT(r.v[0].type, RR_NIL);
	CHECK_INT(parse_str(&r, "*0\r\n"), 4);
	CHECK_INT(r.v[0].type, RR_ARRAY);
	CHECK_INT(r.v[0].n, 0);
	rr_reply_free(&r);
}

static void test_arrays(void)
{
	/* ROLE's shape: a nested array, then a pub/sub message after it */
	const char *s = "*3\r\n$6\r\nmaster\r\n:3129659\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n"
			"$4\r\n9001\r\n$7\r\n3129242\r\n*0\r\n"
			"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n";
	struct rr_reply r = { 0 };
	int n = parse_str(&r, s), i;

	CHECK(n > 0 && (size_t)n < strlen(s));
	CHECK_INT(r.n, 9);
	CHECK_INT(r.v[0].end, 9);
	CHECK(rr_is(&r, rr_elem(&r, 0, 0), "master"));
	CHECK_INT(r.v[rr_elem(&r, 0, 1)].n, 3129659);
	i = rr_elem(&r, 0, 2);
	CHECK_INT(r.v[i].type, RR_ARRAY);
	CHECK_INT(r.v[i].n, 2);
	CHECK(rr_is(&r, rr_elem(&r, (uint32_t)rr_elem(&r, (uint32_t)i, 0), 1), "9001"));
	CHECK_INT(r.v[rr_elem(&r, (uint32_t)i, 1)].n, 0);
	CHECK_INT(rr_elem(&r, 0, 3), -1);
	CHECK_INT(rr_elem(&r, 1, 0), -1);
	/* the message after it */
	CHECK_INT(parse_str(&r, s + n), (int)strlen(s + n));
	CHECK(rr_is(&r, rr_elem(&r, 0, 0), "message"));
	CHECK_MEM(r.v[rr_elem(&r, 0, 2)].p, 3, "abc");
	rr_reply_free(&r);
}

/* Every proper prefix of a reply is incomplete, never an error. */
static void test_cut_everywhere(void)
{
	const char *s = "*4\r\n:1\r\n$3\r\nabc\r\n*2\r\n+x\r\n$-1\r\n-ERR e\r\n";
	struct rr_reply r = { 0 };
	size_t len = strlen(s), i;
	char *copy;

	for (i = 0; i < len; i++) {
		copy = malloc(i + 1);   /* exact size: ASan catches a read past it */
		memcpy(copy, s, i);
		if (rr_parse(&r, copy, i) != -EAGAIN)
			CHECK_INT((int)i, -1);
		free(copy);
	}
	CHECK_INT(rr_parse(&r, s, len), (int)len);
	CHECK_INT(r.n, 7);
	rr_reply_free(&r);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"?x\r\n", "+OK\n", ":\r\n", ":12a\r\n", ":--1\r\n", "$-2\r\n", "*-5\r\n",
		"$3\r\nabcd\r\n", ":12345678901234567890\r\n", "\r\n",
	};
	struct rr_reply r = { 0 };
	char big[100];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_str(&r, bad[i]) != -EBADMSG) {
			test_cur_failed++;
			fprintf(stderr, "  not refused: %s\n", bad[i]);
		}
	/* a number line that never ends */
	memset(big, '1', sizeof(big));
	big[0] = ':';
	CHECK_INT(rr_parse(&r, big, sizeof(big)), -EBADMSG);
	/* limits */
	r.max_bulk = 4;
	CHECK_INT(parse_str(&r, "$5\r\nabcde\r\n"), -E2BIG);
	r.max_vals = 3;
	CHECK_INT(parse_str(&r, "*3\r\n:1\r\n:2\r\n:3\r\n"), -E2BIG);
	CHECK_INT(parse_str(&r, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
		  -E2BIG);
	rr_reply_free(&r);
}

static void test_encode(void)
{
	static const char *const argv[] = { "SET", "k", "" };
	struct rr_buf b = { 0 };
	struct rr_reply r = { 0 };
	size_t lens[] = { 3, 1, 0 };

	CHECK_INT(rr_cmd(&b, 3, argv, lens), 0);
	CHECK_MEM(b.p, b.len, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
	b.len = 0;
	CHECK_INT(rr_cmdv(&b, "PUBLISH", "ch", "a b\r\nc", NULL), 0);
	CHECK_MEM(b.p, b.len, "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$6\r\na b\r\nc\r\n");
	/* a command reads back as an array of bulk strings */
	CHECK_INT(rr_parse(&r, b.p, b.len), (int)b.len);
	CHECK_INT(r.n, 4);
	CHECK_MEM(r.v[3].p, 6, "a b\r\nc");
	rr_buf_free(&b);
	rr_reply_free(&r);
}

int main(void)
{
	RUN(test_scalars);
	RUN(test_arrays);
	RUN(test_cut_everywhere);
	RUN(test_malformed);
	RUN(test_encode);
	TEST_REPORT();
}
