/* test_resp.c - the Redis-protocol port: every command, inline commands as
 * seed 000's clients send them, pipelining, input split at every byte,
 * malformed and hostile input, the input and output bounds, and writes that
 * wait for another worker's shard. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "common.h"
#include "resp.h"
#include "test.h"

#define NOW 1700000000000LL

static char out[1 << 21];
static size_t outn;
static int last_status;

static struct cache *mk(uint32_t workers, uint64_t max_obj)
{
	struct cache_conf cc = { .memory = 8 << 20, .max_object_size = max_obj,
				 .nworkers = workers };
	struct cache *c = NULL;

	CHECK_INT(cache_create(&cc, &c), 0);
	return c;
}

static void sess(struct resp_sess *s, struct cache *c, int w)
{
	struct resp_limits lim;

	resp_limits_default(&lim, cache_max_object(c));
	CHECK_INT(resp_init(s, c, w, &lim), 0);
}

/* Process and collect the output until the session wants input, waits or
 * closes; "sending" whenever it says the output is full. */
static int drive(struct resp_sess *s, int64_t now)
{
	const char *o;
	size_t n;
	int st;

	for (;;) {
		st = resp_process(s, now);
		o = resp_out(s, &n);
		if (outn + n < sizeof out) {
			memcpy(out + outn, o, n);
			outn += n;
		}
		resp_out_consumed(s, n);
		if (st != RESP_OUT_FULL)
			return last_status = st;
	}
}

static void feed_all(struct resp_sess *s, const char *p, size_t n, int64_t now)
{
	size_t k;

	while (n) {
		k = resp_feed(s, p, n);
		p += k;
		n -= k;
		if (drive(s, now) == RESP_CLOSE)
			return;
	}
	drive(s, now);
}

/* Run <in> through <s>; the replies are in out/outn (NUL-terminated). */
static const char *runn(struct resp_sess *s, const char *in, size_t n)
{
	outn = 0;
	feed_all(s, in, n, NOW);
	out[outn] = 0;
	return out;
}

static const char *run(struct resp_sess *s, const char *in)
{
	return runn(s, in, strlen(in));
}

#define RUNL(s, lit) runn(s, lit, sizeof(lit) - 1)   /* literals with NUL bytes */

static void test_ping_echo(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "*1\r\n$4\r\nPING\r\n"), "+PONG\r\n");
	CHECK_STR(run(&s, "*2\r\n$4\r\nping\r\n$2\r\nhi\r\n"), "$2\r\nhi\r\n");
	CHECK_STR(run(&s, "PING\r\n"), "+PONG\r\n");
	CHECK_STR(run(&s, "PING a b\r\n"), "-ERR wrong number of arguments for 'ping' command\r\n");
	CHECK_STR(run(&s, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), "$0\r\n\r\n");
	CHECK_STR(run(&s, "ECHO\r\n"), "-ERR wrong number of arguments for 'echo' command\r\n");
	CHECK_INT(last_status, RESP_NEED_INPUT);
	resp_free(&s);
	cache_destroy(c);
}

static void test_get_set_del(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;
	struct cache_stats st;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"), "+OK\r\n");
	CHECK_STR(run(&s, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), "$5\r\nhello\r\n");
	CHECK_STR(run(&s, "*2\r\n$3\r\nGET\r\n$1\r\nx\r\n"), "$-1\r\n");
	/* binary-safe keys and values */
	CHECK_STR(RUNL(&s, "*3\r\n$3\r\nSET\r\n$3\r\na\0b\r\n$4\r\n\r\n\0\xff\r\n"), "+OK\r\n");
	RUNL(&s, "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n");
	CHECK(outn == 10 && !memcmp(out, "$4\r\n\r\n\0\xff\r\n", 10));
	CHECK_STR(run(&s, "DEL k x a\r\n"), ":1\r\n");
	CHECK_STR(RUNL(&s, "*3\r\n$3\r\nDEL\r\n$1\r\nk\r\n$3\r\na\0b\r\n"), ":1\r\n");
	CHECK_STR(run(&s, "GET k\r\n"), "$-1\r\n");
	CHECK_STR(run(&s, "UNLINK k\r\n"), ":0\r\n");
	CHECK_STR(run(&s, "GET\r\n"), "-ERR wrong number of arguments for 'get' command\r\n");
	CHECK_STR(run(&s, "SET k\r\n"), "-ERR wrong number of arguments for 'set' command\r\n");
	cache_stats(c, &st);
	CHECK_INT(st.hits, 2);
	CHECK_INT(st.misses, 2);
	resp_free(&s);
	cache_destroy(c);
}

static void test_set_options(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "SET k v EX 10\r\nTTL k\r\nPTTL k\r\n"), "+OK\r\n:10\r\n:10000\r\n");
	CHECK_STR(run(&s, "SET k v PX 1500\r\nTTL k\r\n"), "+OK\r\n:2\r\n");   /* rounded */
	CHECK_STR(run(&s, "SET k w NX\r\nGET k\r\n"), "$-1\r\n$1\r\nv\r\n");
	CHECK_STR(run(&s, "SET n w XX\r\nGET n\r\n"), "$-1\r\n$-1\r\n");
	CHECK_STR(run(&s, "SET k w XX KEEPTTL\r\nPTTL k\r\nGET k\r\n"), "+OK\r\n:1500\r\n$1\r\nw\r\n");
	CHECK_STR(run(&s, "SET k w\r\nTTL k\r\n"), "+OK\r\n:-1\r\n");
	CHECK_STR(run(&s, "SET k v exat 1700000100\r\nTTL k\r\n"), "+OK\r\n:100\r\n");
	CHECK_STR(run(&s, "SET k v PXAT 1700000000500\r\nPTTL k\r\n"), "+OK\r\n:500\r\n");
	CHECK_STR(run(&s, "SET k v NX XX\r\n"), "-ERR syntax error\r\n");
	CHECK_STR(run(&s, "SET k v EX 1 PX 1\r\n"), "-ERR syntax error\r\n");
	CHECK_STR(run(&s, "SET k v EX 1 KEEPTTL\r\n"), "-ERR syntax error\r\n");
	CHECK_STR(run(&s, "SET k v EX\r\n"), "-ERR syntax error\r\n");
	CHECK_STR(run(&s, "SET k v FOO\r\n"), "-ERR syntax error\r\n");
	CHECK_STR(run(&s, "SET k v EX 0\r\n"), "-ERR invalid expire time in 'set' command\r\n");
	CHECK_STR(run(&s, "SET k v EX -5\r\n"), "-ERR invalid expire time in 'set' command\r\n");
	CHECK_STR(run(&s, "SET k v EX 9223372036854775807\r\n"),
		  "-ERR invalid expire time in 'set' command\r\n");
	CHECK_STR(run(&s, "SET k v EX abc\r\n"), "-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "SET k v EX 01\r\n"), "-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "GET k\r\n"), "$1\r\nv\r\n");   /* the errors changed nothing */
	resp_free(&s);
	cache_destroy(c);
}

static void test_expire_ttl(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "TTL nope\r\nPTTL nope\r\n"), ":-2\r\n:-2\r\n");
	CHECK_STR(run(&s, "SET k v\r\nTTL k\r\n"), "+OK\r\n:-1\r\n");
	CHECK_STR(run(&s, "EXPIRE k 10\r\nTTL k\r\n"), ":1\r\n:10\r\n");
	CHECK_STR(run(&s, "PEXPIRE k 2500\r\nPTTL k\r\n"), ":1\r\n:2500\r\n");
	CHECK_STR(run(&s, "EXPIRE nope 10\r\n"), ":0\r\n");
	CHECK_STR(run(&s, "EXPIRE k x\r\n"), "-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "EXPIRE k 9223372036854775807\r\n"),
		  "-ERR invalid expire time in 'expire' command\r\n");
	CHECK_STR(run(&s, "EXPIRE k -1\r\nEXISTS k\r\n"), ":1\r\n:0\r\n");   /* past: deleted */
	/* expiry is lazy: a later clock sees the key gone without a sweep */
	run(&s, "SET t v PX 100\r\n");
	outn = 0;
	feed_all(&s, "EXISTS t\r\n", 10, NOW + 100);
	CHECK_MEM(out, outn, ":0\r\n");
	resp_free(&s);
	cache_destroy(c);
}

static void test_multi_keys(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "MSET a 1 b 2\r\n"), "+OK\r\n");
	CHECK_STR(run(&s, "MGET a b c\r\n"), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
	CHECK_STR(run(&s, "EXISTS a b c a\r\n"), ":3\r\n");
	CHECK_STR(run(&s, "MSET a 1 b\r\n"), "-ERR wrong number of arguments for 'mset' command\r\n");
	CHECK_STR(run(&s, "MGET\r\n"), "-ERR wrong number of arguments for 'mget' command\r\n");
	CHECK_STR(run(&s, "DBSIZE\r\n"), ":2\r\n");
	CHECK_STR(run(&s, "FLUSHALL\r\nDBSIZE\r\n"), "+OK\r\n:0\r\n");
	CHECK_STR(run(&s, "MSET x 1\r\nFLUSHDB ASYNC\r\nDBSIZE\r\n"), "+OK\r\n+OK\r\n:0\r\n");
	CHECK_STR(run(&s, "FLUSHALL NOW\r\n"), "-ERR syntax error\r\n");
	resp_free(&s);
	cache_destroy(c);
}

static void test_incr(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "INCR n\r\nINCR n\r\nINCRBY n 40\r\nDECR n\r\nDECRBY n 2\r\nGET n\r\n"),
		  ":1\r\n:2\r\n:42\r\n:41\r\n:39\r\n$2\r\n39\r\n");
	CHECK_STR(run(&s, "SET s abc\r\nINCR s\r\n"),
		  "+OK\r\n-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "SET m 9223372036854775807\r\nINCR m\r\n"),
		  "+OK\r\n-ERR increment or decrement would overflow\r\n");
	CHECK_STR(run(&s, "INCRBY n x\r\n"), "-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "DECRBY n -9223372036854775808\r\n"), "-ERR decrement would overflow\r\n");
	CHECK_STR(run(&s, "SET e 5 EX 100\r\nINCR e\r\nTTL e\r\n"), "+OK\r\n:6\r\n:100\r\n");
	resp_free(&s);
	cache_destroy(c);
}

static void test_info_config_misc(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	run(&s, "SET a 1\r\nGET a\r\nGET b\r\nINFO\r\n");
	CHECK(strstr(out, "# Stats\r\n") != NULL);
	CHECK(strstr(out, "keyspace_hits:1\r\n") != NULL);
	CHECK(strstr(out, "keyspace_misses:1\r\n") != NULL);
	CHECK(strstr(out, "# Memory\r\nused_memory:") != NULL);
	CHECK(strstr(out, "maxmemory:8388608\r\n") != NULL);
	CHECK(strstr(out, "# Keyspace\r\ndb0:keys=1,") != NULL);
	run(&s, "INFO keyspace\r\n");
	CHECK(strstr(out, "# Keyspace") != NULL && strstr(out, "# Stats") == NULL);
	CHECK_STR(run(&s, "CONFIG GET save\r\n"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
	CHECK_STR(run(&s, "CONFIG GET appendonly\r\n"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
	CHECK_STR(run(&s, "CONFIG GET nothing\r\n"), "*0\r\n");
	run(&s, "CONFIG GET *\r\n");
	CHECK(!strncmp(out, "*12\r\n", 5));
	run(&s, "CONFIG GET maxmem*\r\n");
	CHECK(!strncmp(out, "*4\r\n$9\r\nmaxmemory\r\n$7\r\n8388608\r\n", 30));
	CHECK_STR(run(&s, "CONFIG SET save x\r\n"), "-ERR CONFIG supports GET and RESETSTAT only\r\n");
	CHECK_STR(run(&s, "CONFIG GET\r\n"),
		  "-ERR wrong number of arguments for 'config|get' command\r\n");
	CHECK_STR(run(&s, "SELECT 0\r\nSELECT 1\r\n"), "+OK\r\n-ERR DB index is out of range\r\n");
	CHECK_STR(run(&s, "COMMAND DOCS\r\n"), "*0\r\n");
	CHECK_STR(run(&s, "CLIENT SETNAME x\r\nCLIENT GETNAME\r\n"), "+OK\r\n$-1\r\n");
	CHECK_STR(run(&s, "HSET h f v\r\n"),
		  "-ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' \r\n");
	/* control bytes from the client never break the error line */
	CHECK_STR(run(&s, "*1\r\n$3\r\na\rb\r\n"),
		  "-ERR unknown command 'a b', with args beginning with: \r\n");
	CHECK_STR(run(&s, "QUIT\r\nPING\r\n"), "+OK\r\n");
	CHECK_INT(last_status, RESP_CLOSE);
	resp_free(&s);
	cache_destroy(c);
}

/* Seed 000's clients send "GET k\n", "SET k v\n", "DEL k\n". */
static void test_inline(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;

	if (!c)
		return;
	sess(&s, c, 0);
	CHECK_STR(run(&s, "GET k\n"), "$-1\r\n");
	CHECK_STR(run(&s, "SET k v\n"), "+OK\r\n");
	CHECK_STR(run(&s, "GET k\n"), "$1\r\nv\r\n");
	CHECK_STR(run(&s, "DEL k\n"), ":1\r\n");
	CHECK_STR(run(&s, "\r\n\n   \r\nPING\n"), "+PONG\r\n");   /* blank lines skipped */
	CHECK_STR(run(&s, "  set\t k2   v2  \r\nget k2\r\n"), "+OK\r\n$2\r\nv2\r\n");
	CHECK_STR(run(&s, "SET \"a b\" 'c d'\r\nGET \"a b\"\r\n"), "+OK\r\n$3\r\nc d\r\n");
	CHECK_STR(run(&s, "SET q \"x\\x41\\n\\\"\"\r\nGET q\r\n"), "+OK\r\n$4\r\nxA\n\"\r\n");
	CHECK_STR(run(&s, "SET q 'it\\'s'\r\nGET q\r\n"), "+OK\r\n$4\r\nit's\r\n");
	CHECK_STR(run(&s, "SET q \"\"\r\nGET q\r\n"), "+OK\r\n$0\r\n\r\n");
	CHECK_STR(run(&s, "SET \"a\"b c\r\n"), "-ERR Protocol error: unbalanced quotes in request\r\n");
	CHECK_INT(last_status, RESP_CLOSE);
	resp_free(&s);
	sess(&s, c, 0);
	CHECK_STR(run(&s, "GET \"open\r\n"), "-ERR Protocol error: unbalanced quotes in request\r\n");
	resp_free(&s);
	cache_destroy(c);
}

static const char script[] =
	"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\n"
	"GET key\r\n"
	"*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n"
	"\r\n"
	"*0\r\n"
	"*-1\r\n"
	"MSET a 1 b \"two words\"\r\n"
	"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n"
	"*2\r\n$3\r\nDEL\r\n$3\r\nkey\r\n"
	"PING\n"
	"*4\r\n$3\r\nSET\r\n$1\r\ne\r\n$0\r\n\r\n$2\r\nNX\r\n";

static const char script_out[] =
	"+OK\r\n$10\r\n0123456789\r\n:1\r\n+OK\r\n*2\r\n$1\r\n1\r\n$9\r\ntwo words\r\n:1\r\n"
	"+PONG\r\n+OK\r\n";

static void test_pipeline_and_splits(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct resp_sess s;
	size_t len = sizeof script - 1, i, cut;

	if (!c)
		return;
	/* all at once */
	sess(&s, c, 0);
	CHECK_STR(run(&s, script), script_out);
	resp_free(&s);
	/* one byte at a time, processing after each */
	sess(&s, c, 0);
	run(&s, "FLUSHALL\r\n");
	outn = 0;
	for (i = 0; i < len; i++)
		feed_all(&s, script + i, 1, NOW);
	out[outn] = 0;
	CHECK_STR(out, script_out);
	resp_free(&s);
	/* cut in two at every position */
	for (cut = 0; cut <= len; cut++) {
		sess(&s, c, 0);
		run(&s, "FLUSHALL\r\n");
		outn = 0;
		feed_all(&s, script, cut, NOW);
		feed_all(&s, script + cut, len - cut, NOW);
		out[outn] = 0;
		if (strcmp(out, script_out)) {
			CHECK_STR(out, script_out);
			fprintf(stderr, "  cut at %zu\n", cut);
			break;
		}
		resp_free(&s);
	}
	if (cut <= len)
		resp_free(&s);
	cache_destroy(c);
}

/* <in> must get exactly the protocol error <err> and a close. */
static void proto_err_at(int line, struct cache *c, const char *in, size_t n, const char *err)
{
	struct resp_sess s;

	sess(&s, c, 0);
	outn = 0;
	feed_all(&s, in, n, NOW);
	out[outn] = 0;
	if (last_status != RESP_CLOSE || strcmp(out, err)) {
		test_cur_failed++;
		fprintf(stderr, "  line %d: status %d, out \"%s\", expected \"%s\"\n", line,
			last_status, out, err);
	}
	resp_free(&s);
}
#define PROTO_ERR(in, err) proto_err_at(__LINE__, c, in, sizeof(in) - 1, err)

static void test_malformed(void)
{
	struct cache *c = mk(1, 1024);
	struct resp_sess s;
	static char big[80 << 10];
	uint64_t x = 88172645463325252ull;
	int i, j, closed = 0;

	if (!c)
		return;
	PROTO_ERR("*2\r\n$3\r\nGET\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n");
	PROTO_ERR("*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n");
	PROTO_ERR("*1\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length\r\n");   /* > max_bulk */
	PROTO_ERR("*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n");
	PROTO_ERR("*1\r\n$3x\r\n", "-ERR Protocol error: invalid bulk length\r\n");
	PROTO_ERR("*1\r\n$\r\n", "-ERR Protocol error: invalid bulk length\r\n");
	PROTO_ERR("*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
	PROTO_ERR("*9999999999999999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
	PROTO_ERR("*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
	PROTO_ERR("*1\rX", "-ERR Protocol error: expected CRLF\r\n");
	PROTO_ERR("*1\r\n$3\r\nGETxx", "-ERR Protocol error: expected CRLF after bulk data\r\n");
	PROTO_ERR("*1\r\n\x01", "-ERR Protocol error: expected '$', got '?'\r\n");
	/* replies before the error are kept, the rest of the input dropped */
	PROTO_ERR("PING\r\n*1\r\n$-1\r\nPING\r\n",
		  "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");

	/* a huge count allocates nothing up front: it just waits for data */
	sess(&s, c, 0);
	outn = 0;
	feed_all(&s, "*1048576\r\n$4\r\nPING\r\n", 20, NOW);
	CHECK_INT(outn, 0);
	CHECK_INT(last_status, RESP_NEED_INPUT);
	CHECK(s.args_cap <= 16);
	resp_free(&s);

	/* lines without end */
	memset(big, 'a', sizeof big);
	sess(&s, c, 0);
	outn = 0;
	feed_all(&s, big, sizeof big, NOW);
	out[outn] = 0;
	CHECK_STR(out, "-ERR Protocol error: too big inline request\r\n");
	resp_free(&s);
	big[0] = '*';
	sess(&s, c, 0);
	outn = 0;
	feed_all(&s, big, sizeof big, NOW);
	out[outn] = 0;
	CHECK_STR(out, "-ERR Protocol error: too big multibulk count string\r\n");
	resp_free(&s);

	/* random junk, and junk after a valid prefix: never a crash (ASan), bounded */
	for (i = 0; i < 3000; i++) {
		char junk[512];
		size_t n = 1 + (size_t)(x % sizeof junk);

		for (j = 0; (size_t)j < n; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			junk[j] = (char)(i % 3 == 0 ? "*$\r\n0123456789-abc"[x % 18] : (char)x);
		}
		if (i % 2)
			memcpy(junk, "*2\r\n$3\r\nGET\r\n", RF_MIN(n, 13));
		sess(&s, c, 0);
		outn = 0;
		feed_all(&s, junk, n, NOW);
		closed += last_status == RESP_CLOSE;
		CHECK(s.in_cap <= s.lim.max_query && s.out_cap <= s.lim.max_out);
		resp_free(&s);
	}
	CHECK(closed > 100);
	cache_destroy(c);
}

static void test_bounds(void)
{
	struct cache *c = mk(1, 2048);
	struct resp_limits lim;
	struct resp_sess s;
	static char val[1100], cmdbuf[4096], expect[1 << 16];
	size_t n, en = 0;
	int i;

	if (!c)
		return;
	/* output capped at 4k: a pipeline of big GETs is answered in pieces */
	resp_limits_default(&lim, 2048);
	lim.max_out = 4096;
	CHECK_INT(resp_init(&s, c, 0, &lim), 0);
	memset(val, 'v', 1000);
	n = (size_t)snprintf(cmdbuf, sizeof cmdbuf, "SET big %.1000s\r\n", val);
	run(&s, cmdbuf);
	outn = 0;
	for (i = 0; i < 20; i++) {
		n = resp_feed(&s, "GET big\r\n", 9);
		CHECK_INT(n, 9);
		en += (size_t)snprintf(expect + en, sizeof expect - en, "$1000\r\n%.1000s\r\n", val);
	}
	i = resp_process(&s, NOW);
	CHECK_INT(i, RESP_OUT_FULL);
	CHECK(s.out_len <= 4096);
	drive(&s, NOW);
	CHECK_MEM(out, outn, expect);
	/* a single reply that can never fit gets an error, and the session goes on */
	CHECK_STR(run(&s, "MGET big big big big big\r\nPING\r\n"),
		  "-ERR reply larger than the output limit\r\n+PONG\r\n");
	resp_free(&s);

	/* input capped: feed takes what fits, and a command that can never fit
	 * is a protocol error */
	resp_limits_default(&lim, 2048);
	lim.max_query = 4096;
	CHECK_INT(resp_init(&s, c, 0, &lim), 0);
	memset(cmdbuf, 'x', sizeof cmdbuf);
	CHECK_INT(resp_feed(&s, cmdbuf, sizeof cmdbuf), 4096);
	CHECK_INT(resp_feed(&s, cmdbuf, 10), 0);
	resp_free(&s);
	CHECK_INT(resp_init(&s, c, 0, &lim), 0);
	outn = 0;
	memcpy(cmdbuf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n", 27);
	feed_all(&s, cmdbuf, 27, NOW);
	feed_all(&s, val, 1000, NOW);
	feed_all(&s, val, 1000, NOW);
	CHECK_INT(outn, 0);
	CHECK_INT(last_status, RESP_NEED_INPUT);   /* 2000 fits: still reading */
	feed_all(&s, "\r\n", 2, NOW);
	out[outn] = 0;
	CHECK_STR(out, "+OK\r\n");
	resp_free(&s);
	lim.max_query = 1024;
	CHECK_INT(resp_init(&s, c, 0, &lim), 0);
	outn = 0;
	feed_all(&s, cmdbuf, 27, NOW);
	for (i = 0; i < 5 && last_status != RESP_CLOSE; i++)
		feed_all(&s, val, 500, NOW);
	out[outn] = 0;
	CHECK_STR(out, "-ERR Protocol error: command larger than the input limit\r\n");
	resp_free(&s);

	/* values above max_object_size are refused by the store */
	resp_limits_default(&lim, 4096);   /* the parser would take it... */
	CHECK_INT(resp_init(&s, c, 0, &lim), 0);
	memset(cmdbuf, 'y', 3000);
	n = (size_t)snprintf(expect, sizeof expect, "SET k %.3000s\r\n", cmdbuf);
	CHECK_STR(run(&s, expect), "-ERR value larger than the cache's max_object_size\r\n");
	n = (size_t)snprintf(expect, sizeof expect, "MSET a 1 k %.3000s\r\nEXISTS a\r\n", cmdbuf);
	CHECK_STR(run(&s, expect),
		  "-ERR value larger than the cache's max_object_size\r\n:0\r\n");
	resp_free(&s);
	cache_destroy(c);
}

/* Keys owned by shard <shard> of <c>. */
static void key_in(struct cache *c, uint32_t shard, int nth, char *out_key, size_t cap)
{
	int i, seen = 0;

	for (i = 0; i < 10000; i++) {
		snprintf(out_key, cap, "key%d", i);
		if (cache_shard_of(c, out_key, strlen(out_key)) == shard && seen++ == nth)
			return;
	}
}

static void test_blocked_writes(void)
{
	struct cache *c = mk(2, 64 << 10);
	struct resp_sess s;
	char k0[16], k1[16], k1b[16], cmd[256];

	if (!c)
		return;
	key_in(c, 0, 0, k0, sizeof k0);
	key_in(c, 1, 0, k1, sizeof k1);
	key_in(c, 1, 1, k1b, sizeof k1b);
	sess(&s, c, 0);
	/* local shard: answered at once */
	snprintf(cmd, sizeof cmd, "SET %s a\r\n", k0);
	CHECK_STR(run(&s, cmd), "+OK\r\n");
	/* the other worker's shard: the reply, and the GET after it, wait */
	snprintf(cmd, sizeof cmd, "SET %s b\r\nGET %s\r\n", k1, k1);
	CHECK_STR(run(&s, cmd), "");
	CHECK_INT(last_status, RESP_BLOCKED);
	CHECK_INT(resp_process(&s, NOW), RESP_BLOCKED);
	cache_shard_poll(c, 1, NOW);
	outn = 0;
	drive(&s, NOW);
	out[outn] = 0;
	CHECK_STR(out, "+OK\r\n$1\r\nb\r\n");
	/* several shards in one command: answered once all are done */
	snprintf(cmd, sizeof cmd, "DEL %s %s %s\r\n", k0, k1, k1b);
	CHECK_STR(run(&s, cmd), "");
	cache_shard_poll(c, 1, NOW);
	outn = 0;
	drive(&s, NOW);
	out[outn] = 0;
	CHECK_STR(out, ":2\r\n");
	snprintf(cmd, sizeof cmd, "INCR %s\r\nINCRBY %s 5\r\nMSET %s 1 %s 2\r\nFLUSHALL\r\n", k1, k1,
		 k0, k1b);
	run(&s, cmd);
	while (last_status == RESP_BLOCKED) {
		cache_shard_poll(c, 1, NOW);
		drive(&s, NOW);
	}
	out[outn] = 0;
	CHECK_STR(out, ":1\r\n:6\r\n+OK\r\n+OK\r\n");
	/* closed while waiting: the owner frees the requests (ASan: no leak) */
	snprintf(cmd, sizeof cmd, "SET %s x\r\n", k1);
	run(&s, cmd);
	CHECK_INT(last_status, RESP_BLOCKED);
	resp_free(&s);
	cache_shard_poll(c, 1, NOW);
	CHECK(cache_lookup(c, k1, strlen(k1), NOW) != NULL);
	cache_destroy(c);
}

/* Stored responses are values too: GET shows their bytes, PURGE drops them. */
static void test_http_entries(void)
{
	struct cache *c = mk(1, 64 << 10);
	struct cache_entry *e = NULL;
	struct resp_sess s;
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

	if (!c)
		return;
	cache_entry_new(c, CACHE_KIND_HTTP, "http://h:80/a", 13, strlen(resp), 3, &e);
	memcpy(cache_entry_value(e), resp, strlen(resp));
	memcpy(cache_entry_aux(e), "t1", 3);
	cache_entry_http(e)->ntags = 1;
	cache_insert(c, 0, e, NOW);
	sess(&s, c, 0);
	run(&s, "GET http://h:80/a\r\n");
	CHECK_STR(out, "$40\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi\r\n");
	CHECK_STR(run(&s, "INCR http://h:80/a\r\n"), "-ERR value is not an integer or out of range\r\n");
	CHECK_STR(run(&s, "SET http://h:80/b x\r\nPURGE TAG t1\r\nPURGE PREFIX http://h:80/\r\n"),
		  "+OK\r\n:1\r\n:1\r\n");
	CHECK_STR(run(&s, "PURGE ALL\r\n"), "-ERR PURGE takes PREFIX <prefix> or TAG <tag>\r\n");
	CHECK_STR(run(&s, "DBSIZE\r\n"), ":0\r\n");
	resp_free(&s);
	cache_destroy(c);
}

int main(void)
{
	RUN(test_ping_echo);
	RUN(test_get_set_del);
	RUN(test_set_options);
	RUN(test_expire_ttl);
	RUN(test_multi_keys);
	RUN(test_incr);
	RUN(test_info_config_misc);
	RUN(test_inline);
	RUN(test_pipeline_and_splits);
	RUN(test_malformed);
	RUN(test_bounds);
	RUN(test_blocked_writes);
	RUN(test_http_entries);
	TEST_REPORT();
}
