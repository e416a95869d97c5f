/* fuzz_http_response.c - libFuzzer target for http_parse_response().
 *
 * Checks, besides memory safety: a success returns head_len <= len ending
 * in CRLFCRLF; the status is 100..599 and matches the status line; reason
 * and field views lie inside the head, values are OWS-trimmed and hold no
 * CR/LF; CHUNKED and TE_OTHER never come together, nor either with a
 * Content-Length; fed in pieces (last_len) the parser gives the same
 * answer; a tight max_head only turns a success into -EMSGSIZE. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hresp_known_rc(int rc)
{
	return rc > 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE ||
	       rc == -EPROTONOSUPPORT;
}

static void hresp_check_ok(const char *b, size_t len, int rc, const struct http_resp *r)
{
	size_t head, i, j;

	FUZZ_CHECK(rc > 0);
	head = (size_t)rc;
	FUZZ_CHECK(r->head_len == head && head <= len);
	FUZZ_CHECK(head >= 4 && !memcmp(b + head - 4, "\r\n\r\n", 4));
	FUZZ_CHECK(!memcmp(b, "HTTP/1.", 7) && r->minor == (uint8_t)(b[7] - '0'));
	FUZZ_CHECK(r->minor <= 1);
	FUZZ_CHECK(r->status >= 100 && r->status <= 599);
	FUZZ_CHECK(r->status == (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0'));
	FUZZ_CHECK(fuzz_inside(b, head, r->reason, r->reason_len));
	FUZZ_CHECK(r->content_length >= -1);
	FUZZ_CHECK(!((r->flags & HTTP_FL_CHUNKED) && (r->flags & HTTP_FL_TE_OTHER)));
	if (r->flags & (HTTP_FL_CHUNKED | HTTP_FL_TE_OTHER))
		FUZZ_CHECK(r->content_length < 0 && r->minor == 1);
	FUZZ_CHECK(r->nhdrs <= HTTP_MAX_HEADERS);
	for (i = 0; i < r->nhdrs; i++) {
		const struct http_hdr *h = &r->hdrs[i];

		FUZZ_CHECK(h->name_len > 0 && fuzz_inside(b, head, h->name, h->name_len));
		FUZZ_CHECK(fuzz_inside(b, head, h->value, h->value_len));
		FUZZ_CHECK(h->name[h->name_len] == ':');
		if (h->value_len)
			FUZZ_CHECK(h->value[0] != ' ' && h->value[0] != '\t' &&
				   h->value[h->value_len - 1] != ' ' &&
				   h->value[h->value_len - 1] != '\t');
		for (j = 0; j < h->value_len; j++)
			FUZZ_CHECK(h->value[j] != '\r' && h->value[j] != '\n' && h->value[j] != 0);
		if (h->field == HTTP_F_CONTENT_LENGTH)
			FUZZ_CHECK(r->content_length >= 0);
		if (h->field == HTTP_F_TRANSFER_ENCODING)
			FUZZ_CHECK(r->flags & (HTTP_FL_CHUNKED | HTTP_FL_TE_OTHER));
	}
}

static void hresp_same(const struct http_resp *a, const struct http_resp *b, ptrdiff_t shift)
{
	uint32_t i;

	FUZZ_CHECK(a->head_len == b->head_len && a->nhdrs == b->nhdrs);
	FUZZ_CHECK(a->status == b->status && a->minor == b->minor && a->flags == b->flags);
	FUZZ_CHECK(a->content_length == b->content_length && a->reason_len == b->reason_len);
	FUZZ_CHECK(a->reason + shift == b->reason);
	for (i = 0; i < a->nhdrs; i++) {
		FUZZ_CHECK(a->hdrs[i].name + shift == b->hdrs[i].name);
		FUZZ_CHECK(a->hdrs[i].value_len == b->hdrs[i].value_len);
		FUZZ_CHECK(a->hdrs[i].field == b->hdrs[i].field);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_resp r1, r2;
	struct http_limits lim = { 0, 0 };
	uint64_t rs = fuzz_seed(data, size);
	char *b = fuzz_dup(data, size);
	size_t last = 0, cut;
	int rc, rc2 = -EAGAIN;

	rc = http_parse_response(b, size, 0, &lim, &r1);
	FUZZ_CHECK(hresp_known_rc(rc));
	if (rc > 0)
		hresp_check_ok(b, size, rc, &r1);

	/* in pieces of random size, as a backend's segments arrive */
	while (last < size && rc2 == -EAGAIN) {
		cut = last + 1 + fuzz_rand(&rs) % (size - last);
		rc2 = http_parse_response(b, cut, last, &lim, &r2);
		FUZZ_CHECK(hresp_known_rc(rc2));
		if (rc > 0 && cut < (size_t)rc)
			FUZZ_CHECK(rc2 == -EAGAIN);
		last = cut;
	}
	if (rc > 0 || rc2 > 0) {
		FUZZ_CHECK(rc2 == rc);
		hresp_same(&r1, &r2, 0);
	}
	if (last == size)
		FUZZ_CHECK(rc2 == rc);

	if (rc > 0) {
		char *h = fuzz_dup(data, (size_t)rc);

		rc2 = http_parse_response(h, (size_t)rc, 0, &lim, &r2);
		FUZZ_CHECK(rc2 == rc);
		hresp_same(&r1, &r2, h - b);
		free(h);
	}

	lim.max_head = 1 + (uint32_t)(fuzz_rand(&rs) % (size + 1));
	rc2 = http_parse_response(b, size, 0, &lim, &r2);
	FUZZ_CHECK(hresp_known_rc(rc2));
	if (rc2 > 0) {
		FUZZ_CHECK(rc2 == rc && (size_t)rc2 <= lim.max_head);
		hresp_check_ok(b, size, rc2, &r2);
	} else if (rc > 0) {
		FUZZ_CHECK(rc2 == -EMSGSIZE);
	}
	free(b);
	return 0;
}
