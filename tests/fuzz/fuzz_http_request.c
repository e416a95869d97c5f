/* fuzz_http_request.c - libFuzzer target for http_parse_request().
 *
 * Beyond "no crash, no out-of-bounds read", every parse is checked for:
 *  - a complete head: head_len == the return value <= len; method, target,
 *    host and every field view lie inside the head (the target may also be
 *    the literal "/" or "*" of an absolute-form request with an empty path);
 *    no field value has leading/trailing OWS or a CR/LF; names are tokens;
 *    the field ids and the method id agree with the text; CHUNKED never
 *    comes with a Content-Length; HTTP/1.1 always has a host;
 *  - resumability: the same bytes fed in pieces (with last_len) give the
 *    same answer as one call, and a valid head is never refused early;
 *  - the head alone (buf[0, head_len)) parses to the same result;
 *  - tight limits only ever turn a success into -EMSGSIZE / -ENAMETOOLONG. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int req_errs[] = { -EAGAIN, -EBADMSG, -EMSGSIZE, -ENAMETOOLONG,
				-EPROTONOSUPPORT, -ENOSYS };

static int req_known_rc(int rc)
{
	size_t i;

	if (rc > 0)
		return 1;
	for (i = 0; i < sizeof req_errs / sizeof req_errs[0]; i++)
		if (rc == req_errs[i])
			return 1;
	return 0;
}

static int req_is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const struct { const char *name; uint16_t id; } req_fields[] = {
	{ "host", HTTP_F_HOST }, { "content-length", HTTP_F_CONTENT_LENGTH },
	{ "transfer-encoding", HTTP_F_TRANSFER_ENCODING }, { "connection", HTTP_F_CONNECTION },
	{ "keep-alive", HTTP_F_KEEP_ALIVE }, { "proxy-connection", HTTP_F_PROXY_CONNECTION },
	{ "te", HTTP_F_TE }, { "trailer", HTTP_F_TRAILER }, { "upgrade", HTTP_F_UPGRADE },
	{ "expect", HTTP_F_EXPECT }, { "x-forwarded-for", HTTP_F_X_FORWARDED_FOR },
	{ "x-forwarded-proto", HTTP_F_X_FORWARDED_PROTO },
	{ "x-request-id", HTTP_F_X_REQUEST_ID }, { "via", HTTP_F_VIA },
};

static const struct { const char *name; uint8_t id; } req_methods[] = {
	{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
	{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE }, { "PATCH", HTTP_M_PATCH },
	{ "OPTIONS", HTTP_M_OPTIONS }, { "CONNECT", HTTP_M_CONNECT }, { "TRACE", HTTP_M_TRACE },
};

/* The id a field name must get (names are matched case-insensitively). */
static uint16_t req_field_of(const char *n, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof req_fields / sizeof req_fields[0]; i++)
		if (fuzz_ieq(n, len, req_fields[i].name))
			return req_fields[i].id;
	return HTTP_F_OTHER;
}

/* Methods are case-sensitive (RFC 9110 9.1). */
static uint8_t req_method_of(const char *m, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof req_methods / sizeof req_methods[0]; i++)
		if (strlen(req_methods[i].name) == len && !memcmp(m, req_methods[i].name, len))
			return req_methods[i].id;
	return HTTP_M_OTHER;
}

static void req_check_ok(const char *b, size_t len, int rc, const struct http_req *r)
{
	size_t head, i, j;

	FUZZ_CHECK(rc > 0);
	head = (size_t)rc;
	FUZZ_CHECK(r->head_len == head && head <= len);
	FUZZ_CHECK(head >= 4 && !memcmp(b + head - 4, "\r\n\r\n", 4));
	FUZZ_CHECK(r->minor <= 1);
	FUZZ_CHECK(r->method_len > 0 && fuzz_inside(b, head, r->method, r->method_len));
	for (i = 0; i < r->method_len; i++)
		FUZZ_CHECK(req_is_tchar((unsigned char)r->method[i]));
	FUZZ_CHECK(r->meth == req_method_of(r->method, r->method_len));
	FUZZ_CHECK(r->target_len > 0);
	if (!fuzz_inside(b, head, r->target, r->target_len))
		FUZZ_CHECK((r->flags & HTTP_FL_ABSOLUTE) && r->target_len == 1 &&
			   (r->target[0] == '/' || r->target[0] == '*'));
	for (i = 0; i < r->target_len; i++)
		FUZZ_CHECK(r->target[i] > 0x20 && r->target[i] < 0x7f);
	FUZZ_CHECK(fuzz_inside(b, head, r->host, r->host_len));
	if (r->minor == 1)
		FUZZ_CHECK(r->host != NULL);
	if (r->meth == HTTP_M_CONNECT)
		FUZZ_CHECK(r->host && r->host_len > 0);
	FUZZ_CHECK(r->content_length >= -1);
	FUZZ_CHECK(!((r->flags & HTTP_FL_CHUNKED) && r->content_length >= 0));
	if (r->flags & HTTP_FL_CHUNKED)
		FUZZ_CHECK(r->minor == 1);
	FUZZ_CHECK(r->nhdrs <= HTTP_MAX_HEADERS);
	for (i = 0; i < r->nhdrs; i++) {
		const struct http_hdr *h = &r->hdrs[i];

		FUZZ_CHECK(h->name_len > 0 && fuzz_inside(b, head, h->name, h->name_len));
		FUZZ_CHECK(fuzz_inside(b, head, h->value, h->value_len));
		for (j = 0; j < h->name_len; j++)
			FUZZ_CHECK(req_is_tchar((unsigned char)h->name[j]));
		FUZZ_CHECK(h->name + h->name_len < b + head && h->name[h->name_len] == ':');
		if (h->value_len) {
			FUZZ_CHECK(h->value[0] != ' ' && h->value[0] != '\t');
			FUZZ_CHECK(h->value[h->value_len - 1] != ' ' &&
				   h->value[h->value_len - 1] != '\t');
		}
		for (j = 0; j < h->value_len; j++)
			FUZZ_CHECK(h->value[j] != '\r' && h->value[j] != '\n' && h->value[j] != 0);
		FUZZ_CHECK(h->field == req_field_of(h->name, h->name_len));
		if (h->field == HTTP_F_CONTENT_LENGTH)
			FUZZ_CHECK(r->content_length >= 0);
		if (h->field == HTTP_F_TRANSFER_ENCODING)
			FUZZ_CHECK(r->flags & HTTP_FL_CHUNKED);
		/* fields are in buffer order and do not overlap */
		if (i)
			FUZZ_CHECK(h->name > r->hdrs[i - 1].value + r->hdrs[i - 1].value_len);
	}
}

/* Two successful parses of the same head agree. */
static void req_same(const struct http_req *a, const struct http_req *b, ptrdiff_t shift)
{
	uint32_t i;

	FUZZ_CHECK(a->head_len == b->head_len && a->nhdrs == b->nhdrs);
	FUZZ_CHECK(a->flags == b->flags && a->content_length == b->content_length);
	FUZZ_CHECK(a->meth == b->meth && a->minor == b->minor);
	FUZZ_CHECK(a->target_len == b->target_len && a->host_len == b->host_len);
	FUZZ_CHECK(a->method + shift == b->method);
	for (i = 0; i < a->nhdrs; i++) {
		FUZZ_CHECK(a->hdrs[i].name + shift == b->hdrs[i].name);
		FUZZ_CHECK(a->hdrs[i].value + shift == b->hdrs[i].value);
		FUZZ_CHECK(a->hdrs[i].value_len == b->hdrs[i].value_len);
		FUZZ_CHECK(a->hdrs[i].field == b->hdrs[i].field);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_req r1, r2;
	struct http_limits lim = { 0, 0 };
	uint64_t rs = fuzz_seed(data, size);
	char *b = fuzz_dup(data, size);
	size_t cut[6], last, i, n = 0;
	int rc, rc2;

	rc = http_parse_request(b, size, 0, &lim, &r1);
	FUZZ_CHECK(req_known_rc(rc));
	if (rc > 0)
		req_check_ok(b, size, rc, &r1);
	/* the mapping to a status is total */
	if (rc < 0 && rc != -EAGAIN) {
		int st = http_parse_error_status(rc);

		FUZZ_CHECK(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
	}

	/* resumable: the same bytes in pieces; a piece's error ends the stream */
	for (i = 0; i < 5 && size > 1; i++)
		cut[n++] = 1 + fuzz_rand(&rs) % (size - 1);
	for (i = 1; i < n; i++) {       /* sort the few cut points */
		size_t k = cut[i], j = i;

		while (j && cut[j - 1] > k) {
			cut[j] = cut[j - 1];
			j--;
		}
		cut[j] = k;
	}
	cut[n++] = size;
	last = 0;
	rc2 = -EAGAIN;
	for (i = 0; i < n && rc2 == -EAGAIN; i++) {
		if (cut[i] == last)
			continue;
		rc2 = http_parse_request(b, cut[i], last, &lim, &r2);
		FUZZ_CHECK(req_known_rc(rc2));
		if (rc > 0 && cut[i] < (size_t)rc)
			FUZZ_CHECK(rc2 == -EAGAIN);   /* a valid head is never refused early */
		last = cut[i];
	}
	if (rc2 > 0 || rc > 0) {
		FUZZ_CHECK(rc2 == rc);
		req_same(&r1, &r2, 0);
	}
	if (i == n && last == size)
		FUZZ_CHECK(rc2 == rc);      /* pieces that all said "more" end like one call */

	/* the head alone, in a buffer of its own */
	if (rc > 0) {
		char *h = fuzz_dup(data, (size_t)rc);

		rc2 = http_parse_request(h, (size_t)rc, 0, &lim, &r2);
		FUZZ_CHECK(rc2 == rc);
		req_same(&r1, &r2, h - b);
		free(h);
	}

	/* tight limits only turn success into a size error */
	lim.max_head = 1 + (uint32_t)(fuzz_rand(&rs) % (size + 1));
	lim.max_uri = 1 + (uint32_t)(fuzz_rand(&rs) % (size + 1));
	rc2 = http_parse_request(b, size, 0, &lim, &r2);
	FUZZ_CHECK(req_known_rc(rc2));
	if (rc2 > 0) {
		FUZZ_CHECK(rc2 == rc && (size_t)rc2 <= lim.max_head);
		req_check_ok(b, size, rc2, &r2);
		FUZZ_CHECK(r2.target_len <= lim.max_uri || (r2.flags & HTTP_FL_ABSOLUTE));
	} else if (rc > 0) {
		FUZZ_CHECK(rc2 == -EMSGSIZE || rc2 == -ENAMETOOLONG);
	}
	free(b);
	return 0;
}
