/* fuzz_json.c - libFuzzer target for the admin API's JSON parser,
 * json_parse() and its accessors (src/json.h).
 *
 * On success: token 0 spans the document; every token lies inside the
 * text; a container's `next` skips exactly its subtree and its children,
 * walked with json_next(), number exactly `size` (objects: key/value
 * pairs, keys are strings) and end at `next`; scalars have next = i + 1.
 * Every string decodes (or says -EINVAL/-ENOSPC) to no more bytes than
 * its raw form; json_get() finds what a walk finds. On failure the error
 * offset is inside the text and a message is set. With room for fewer
 * tokens, a document either parses the same or fails with -E2BIG. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define JS_MAX 4096

/* Check the subtree at <i>; returns the index after it. */
static uint32_t js_walk(const struct json_doc *d, uint32_t i, int depth)
{
	const struct json_tok *t = &d->toks[i];
	uint32_t k, c;

	FUZZ_CHECK(depth <= JSON_MAX_DEPTH + 1);
	FUZZ_CHECK(t->type >= JSON_OBJECT && t->type <= JSON_NULL);
	FUZZ_CHECK(t->start <= d->len && t->len <= d->len - t->start);
	FUZZ_CHECK(t->next > i && t->next <= d->ntoks);
	if (t->type != JSON_OBJECT && t->type != JSON_ARRAY) {
		FUZZ_CHECK(t->size == 0 && t->next == i + 1);
		return i + 1;
	}
	c = i + 1;
	for (k = 0; k < t->size; k++) {
		FUZZ_CHECK(c < t->next);
		if (t->type == JSON_OBJECT) {
			FUZZ_CHECK(d->toks[c].type == JSON_STRING);
			c = js_walk(d, c, depth + 1);       /* the key */
			FUZZ_CHECK(c < t->next);
		}
		c = js_walk(d, c, depth + 1);
	}
	FUZZ_CHECK(c == t->next);
	return c;
}

static void js_check_strings(const struct json_doc *d)
{
	char buf[256];
	uint32_t i;
	int n;

	for (i = 0; i < d->ntoks; i++) {
		if (d->toks[i].type != JSON_STRING) {
			FUZZ_CHECK(json_str(d, (int)i, buf, sizeof buf) == -EINVAL);
			continue;
		}
		n = json_str(d, (int)i, buf, sizeof buf);
		FUZZ_CHECK(n == -EINVAL || n == -ENOSPC || (n >= 0 && (size_t)n < sizeof buf));
		if (n >= 0) {
			FUZZ_CHECK((uint32_t)n <= d->toks[i].len);
			FUZZ_CHECK(buf[n] == 0 && strlen(buf) == (size_t)n);
			FUZZ_CHECK(json_str_eq(d, (int)i, buf) == 1);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tok toks[JS_MAX], toks2[JS_MAX];
	struct json_doc d, d2;
	char *b = fuzz_dup(data, size);
	uint32_t small;
	int rc, rc2, i;
	uint64_t u;
	double x;

	memset(&d, 0, sizeof d);
	rc = json_parse(&d, b, size, toks, JS_MAX);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ELOOP || rc == -E2BIG);
	if (rc) {
		FUZZ_CHECK(d.err != NULL && d.err_off <= size);
		free(b);
		return 0;
	}
	FUZZ_CHECK(d.ntoks >= 1 && d.ntoks <= JS_MAX);
	FUZZ_CHECK(js_walk(&d, 0, 0) == d.ntoks);
	js_check_strings(&d);
	for (i = 0; i < (int)d.ntoks; i++) {
		int t = json_type(&d, i), bv;

		FUZZ_CHECK(t == d.toks[i].type);
		if (t == JSON_NUMBER) {
			rc2 = json_double(&d, i, &x);
			FUZZ_CHECK(rc2 == 0 || rc2 == -ERANGE);
			rc2 = json_u64(&d, i, UINT64_MAX, &u);
			FUZZ_CHECK(rc2 == 0 || rc2 == -EINVAL || rc2 == -ERANGE);
		} else {
			FUZZ_CHECK(json_double(&d, i, &x) == -EINVAL);
		}
		rc2 = json_bool(&d, i, &bv);
		FUZZ_CHECK(t == JSON_TRUE || t == JSON_FALSE ? rc2 == 0 && bv == (t == JSON_TRUE)
							     : rc2 == -EINVAL);
		FUZZ_CHECK(json_type_name(t) != NULL);
	}
	/* json_get on the top object finds the first member with that key */
	if (d.toks[0].type == JSON_OBJECT && d.toks[0].size) {
		char key[256];
		int c = 1, v;

		if (json_str(&d, c, key, sizeof key) >= 0) {
			v = json_get(&d, 0, key);
			FUZZ_CHECK(v == c + 1);
		}
	}
	FUZZ_CHECK(json_get(&d, 0, "x") == -EINVAL || d.toks[0].type == JSON_OBJECT);
	/* fewer tokens: the same parse, or -E2BIG */
	small = 1 + (uint32_t)(fuzz_seed(data, size) % d.ntoks);
	memset(&d2, 0, sizeof d2);
	rc2 = json_parse(&d2, b, size, toks2, small);
	if (small >= d.ntoks) {
		FUZZ_CHECK(rc2 == 0 && d2.ntoks == d.ntoks);
		FUZZ_CHECK(!memcmp(toks, toks2, d.ntoks * sizeof toks[0]));
	} else {
		FUZZ_CHECK(rc2 == -E2BIG);
	}
	free(b);
	return 0;
}
