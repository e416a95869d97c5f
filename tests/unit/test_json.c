/* test_json.c - the admin API's JSON parser: a valid and an invalid corpus
 * (with the offsets errors are reported at), escapes and \u surrogates,
 * numbers, the depth and token limits, and every truncation of valid
 * documents. Each input is parsed from an exact-size heap copy, so an
 * over-read trips AddressSanitizer in debug builds. */
#include <errno.h>
#include <stdlib.h>
#include "test.h"
#include "common.h"
#include "json.h"

static struct json_tok toks[512];

/* Parse <n> bytes of <s> from an exact-size copy. */
static int parse_n(struct json_doc *d, const char *s, size_t n, uint32_t max)
{
	char *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, s, n);
	rc = json_parse(d, copy, n, toks, max);
	/* keep the copy alive while the test looks at the doc's views */
	static char *last;
	free(last);
	last = copy;
	return rc;
}

static int parse(struct json_doc *d, const char *s)
{
	return parse_n(d, s, strlen(s), ARRAY_SIZE(toks));
}

static void test_valid_corpus(void)
{
	static const char *const ok[] = {
		"{}", "[]", "0", "-0", "1.5e-3", "\"\"", "true", "false", "null",
		" \t\r\n{ \"a\" : [ 1 , 2 , { } , [ ] ] } \n",
		"{\"a\":{\"b\":{\"c\":[null,true,false,\"x\"]}}}",
		"[1E10,1e+2,-12.25E-1,0.0]",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"",
		"\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"",
		"{\"upstream\":\"app\",\"balance\":\"least_conn\"}",
	};
	struct json_doc d;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		int rc = parse(&d, ok[i]);

		if (rc != 0)
			fprintf(stderr, "  valid #%zu rejected at %zu: %s\n", i, d.err_off, d.err);
		CHECK_INT(rc, 0);
	}
}

struct bad {
	const char *text;
	size_t off;             /* where the error must be reported */
};

static void test_invalid_corpus(void)
{
	static const struct bad bad[] = {
		{ "", 0 }, { "   ", 3 }, { "{", 1 }, { "[", 1 }, { "{\"a\"", 4 },
		{ "{\"a\":", 5 }, { "{\"a\":1", 6 }, { "[1,]", 3 }, { "{\"a\":1,}", 7 },
		{ "{,}", 1 }, { "[,1]", 1 }, { "{a:1}", 1 }, { "{\"a\" 1}", 5 },
		{ "{\"a\":1 \"b\":2}", 7 }, { "[1 2]", 3 }, { "01", 1 }, { "1.", 2 },
		{ ".5", 0 }, { "-", 1 }, { "1e", 2 }, { "1e+", 3 }, { "+1", 0 },
		{ "tru", 3 }, { "trUe", 2 }, { "nul", 3 }, { "[1]]", 3 }, { "{}x", 2 },
		{ "\"abc", 4 }, { "\"a\nb\"", 2 }, { "\"\\x\"", 1 }, { "\"\\u12G4\"", 1 },
		{ "\"\\udc00\"", 1 }, { "\"\\ud800\"", 1 }, { "\"\\ud800\\u0041\"", 1 },
		{ "\"\\ud800x\"", 1 }, { "\"\xc3\"", 1 }, { "\"\xc0\xaf\"", 1 },
		{ "\"\xed\xa0\x80\"", 1 }, { "\"\xf4\x90\x80\x80\"", 1 }, { "\"\xff\"", 1 },
		{ "[\"a\" , }", 7 }, { "NaN", 0 }, { "[Infinity]", 1 }, { "'a'", 0 },
		{ "{\"a\":1}{}", 7 }, { "\xef\xbb\xbf{}", 0 },
	};
	struct json_doc d;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int rc = parse(&d, bad[i].text);

		if (rc != -EINVAL || d.err_off != bad[i].off)
			fprintf(stderr, "  invalid #%zu '%s': rc %d off %zu (%s), want off %zu\n",
				i, bad[i].text, rc, d.err_off, d.err ? d.err : "-", bad[i].off);
		CHECK_INT(rc, -EINVAL);
		CHECK_INT(d.err_off, bad[i].off);
		CHECK(d.err != NULL);
	}
	/* an embedded NUL byte is a control character */
	CHECK_INT(parse_n(&d, "\"a\0b\"", 5, 16), -EINVAL);
	CHECK_INT(d.err_off, 2);
}

static void test_tokens_and_members(void)
{
	struct json_doc d;
	char buf[64];
	int v, arr, k;
	uint64_t u;

	CHECK_INT(parse(&d, "{\"name\":\"app\",\"list\":[1,[2,3],{\"x\":4}],\"w\":7,"
			    "\"on\":true,\"nil\":null}"), 0);
	CHECK_INT(d.toks[0].type, JSON_OBJECT);
	CHECK_INT(d.toks[0].size, 5);
	CHECK_INT(d.toks[0].next, d.ntoks);
	v = json_get(&d, 0, "name");
	CHECK_INT(json_str(&d, v, buf, sizeof(buf)), 3);
	CHECK_STR(buf, "app");
	arr = json_get(&d, 0, "list");
	CHECK_INT(json_type(&d, arr), JSON_ARRAY);
	CHECK_INT(d.toks[arr].size, 3);
	k = json_child(arr);
	CHECK_INT(json_u64(&d, k, 100, &u), 0);
	CHECK_INT(u, 1);
	k = json_next(&d, k);
	CHECK_INT(json_type(&d, k), JSON_ARRAY);
	k = json_next(&d, k);
	CHECK_INT(json_type(&d, k), JSON_OBJECT);
	CHECK_INT(json_u64(&d, json_get(&d, k, "x"), 100, &u), 0);
	CHECK_INT(u, 4);
	CHECK_INT(json_next(&d, k), json_get(&d, 0, "w") - 1);
	CHECK_INT(json_u64(&d, json_get(&d, 0, "w"), 100, &u), 0);
	CHECK_INT(u, 7);
	CHECK_INT(json_bool(&d, json_get(&d, 0, "on"), &v), 0);
	CHECK_INT(v, 1);
	CHECK_INT(json_type(&d, json_get(&d, 0, "nil")), JSON_NULL);
	CHECK_INT(json_get(&d, 0, "missing"), -ENOENT);
	CHECK_INT(json_get(&d, arr, "x"), -EINVAL);
	CHECK_INT(json_bool(&d, json_get(&d, 0, "w"), &v), -EINVAL);
	CHECK_INT(json_str(&d, json_get(&d, 0, "w"), buf, sizeof(buf)), -EINVAL);
	CHECK_STR(json_type_name(JSON_ARRAY), "array");
}

static void test_escapes(void)
{
	struct json_doc d;
	char buf[64];

	CHECK_INT(parse(&d, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""), 0);
	CHECK_INT(json_str(&d, 0, buf, sizeof(buf)), 12);
	CHECK_STR(buf, "a\"b\\c/d\b\f\n\r\t");
	CHECK_INT(parse(&d, "\"\\u0041\\u00E9\\u20ac\\uD83D\\uDE00\""), 0);
	CHECK_INT(json_str(&d, 0, buf, sizeof(buf)), 1 + 2 + 3 + 4);
	CHECK_STR(buf, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* U+0000 cannot go into a C string */
	CHECK_INT(parse(&d, "\"a\\u0000b\""), 0);
	CHECK_INT(json_str(&d, 0, buf, sizeof(buf)), -EINVAL);
	/* too small a buffer */
	CHECK_INT(parse(&d, "\"abcdef\""), 0);
	CHECK_INT(json_str(&d, 0, buf, 6), -ENOSPC);
	CHECK_INT(json_str(&d, 0, buf, 7), 6);
	/* keys compare decoded */
	CHECK_INT(parse(&d, "{\"\\u0069d\":\"x\",\"id\":\"y\"}"), 0);
	CHECK_INT(json_get(&d, 0, "id"), 2);
	CHECK(json_str_eq(&d, 1, "id"));
	CHECK(!json_str_eq(&d, 1, "i"));
}

static void test_numbers(void)
{
	static const struct { const char *text; int rc; uint64_t v; } u64s[] = {
		{ "0", 0, 0 }, { "42", 0, 42 }, { "1000", 0, 1000 }, { "1001", -ERANGE, 0 },
		{ "1e3", 0, 1000 }, { "20.0", 0, 20 }, { "2.5", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 }, { "99999999999999999999999", -ERANGE, 0 },
	};
	struct json_doc d;
	uint64_t u;
	double f;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(u64s); i++) {
		u = 0;
		CHECK_INT(parse(&d, u64s[i].text), 0);
		CHECK_INT(json_u64(&d, 0, 1000, &u), u64s[i].rc);
		if (!u64s[i].rc)
			CHECK_INT(u, u64s[i].v);
	}
	CHECK_INT(parse(&d, "18446744073709551615"), 0);
	CHECK_INT(json_u64(&d, 0, UINT64_MAX, &u), -ERANGE);   /* conservative: digits limit */
	CHECK_INT(parse(&d, "1844674407370955161"), 0);
	CHECK_INT(json_u64(&d, 0, UINT64_MAX, &u), 0);
	CHECK(u == 1844674407370955161ull);
	CHECK_INT(parse(&d, "-12.5e-1"), 0);
	CHECK_INT(json_double(&d, 0, &f), 0);
	CHECK(f == -1.25);
	CHECK_INT(parse(&d, "1.4"), 0);
	CHECK_INT(json_double(&d, 0, &f), 0);
	CHECK(f > 1.39999 && f < 1.40001);
	CHECK_INT(parse(&d, "1e999"), 0);
	CHECK_INT(json_double(&d, 0, &f), -ERANGE);
	CHECK_INT(parse(&d, "\"1\""), 0);
	CHECK_INT(json_double(&d, 0, &f), -EINVAL);
}

static void test_depth_limit(void)
{
	char buf[2 * (JSON_MAX_DEPTH + 2) + 1];
	struct json_doc d;
	int n;

	/* exactly JSON_MAX_DEPTH levels parse */
	for (n = 0; n < JSON_MAX_DEPTH; n++)
		buf[n] = '[', buf[2 * JSON_MAX_DEPTH - 1 - n] = ']';
	buf[2 * JSON_MAX_DEPTH] = 0;
	CHECK_INT(parse(&d, buf), 0);
	CHECK_INT(d.ntoks, JSON_MAX_DEPTH);
	/* one more is refused where it opens */
	for (n = 0; n < JSON_MAX_DEPTH + 1; n++)
		buf[n] = '[', buf[2 * JSON_MAX_DEPTH + 1 - n] = ']';
	buf[2 * JSON_MAX_DEPTH + 2] = 0;
	CHECK_INT(parse(&d, buf), -ELOOP);
	CHECK_INT(d.err_off, JSON_MAX_DEPTH);
	/* objects count too; a deep hostile document costs no stack */
	{
		static char deep[500001];
		size_t i;

		for (i = 0; i < 100000; i++)
			memcpy(deep + 5 * i, "{\"a\":", 5);
		deep[500000] = 0;
		CHECK_INT(parse(&d, deep), -ELOOP);
		CHECK_INT(d.err_off, 5 * JSON_MAX_DEPTH);
		for (i = 0; i < 100000; i++)
			deep[i] = '[';
		deep[100000] = 0;
		CHECK_INT(parse(&d, deep), -ELOOP);
		CHECK_INT(d.err_off, JSON_MAX_DEPTH);
	}
}

static void test_token_limit(void)
{
	struct json_doc d;

	CHECK_INT(parse_n(&d, "[1,2,3]", 7, 4), 0);
	CHECK_INT(parse_n(&d, "[1,2,3]", 7, 3), -E2BIG);
	CHECK_INT(d.err_off, 5);
	CHECK_INT(parse_n(&d, "{\"a\":1}", 7, 2), -E2BIG);
	CHECK_INT(parse_n(&d, "{\"a\":1}", 7, 3), 0);
	CHECK_INT(parse_n(&d, "1", 1, 0), -E2BIG);
}

/* Every proper prefix of a valid document is incomplete: -EINVAL at the
 * end of input (numbers and literals aside, where a prefix may itself be
 * valid: "12" of "123"). */
static void test_truncated(void)
{
	static const char *const docs[] = {
		"{\"a\":[1,2,{\"b\":\"c\\u00e9\\ud83d\\ude00\"}],\"t\":true,\"n\":null}",
		"[\"x\",{\"y\":[false]},-1.5e3]",
		"\"\xe2\x82\xac\"",
	};
	struct json_doc d;
	size_t i, n, len;
	int rc;

	for (i = 0; i < ARRAY_SIZE(docs); i++) {
		len = strlen(docs[i]);
		CHECK_INT(parse_n(&d, docs[i], len, ARRAY_SIZE(toks)), 0);
		for (n = 0; n < len; n++) {
			rc = parse_n(&d, docs[i], n, ARRAY_SIZE(toks));
			if (rc != -EINVAL || d.err_off > n)
				fprintf(stderr, "  doc %zu prefix %zu: rc %d off %zu\n", i, n, rc,
					d.err_off);
			CHECK_INT(rc, -EINVAL);
			CHECK(d.err_off <= n);
		}
	}
}

int main(void)
{
	RUN(test_valid_corpus);
	RUN(test_invalid_corpus);
	RUN(test_tokens_and_members);
	RUN(test_escapes);
	RUN(test_numbers);
	RUN(test_depth_limit);
	RUN(test_token_limit);
	RUN(test_truncated);
	TEST_REPORT();
}
