/* json.h - a small, bounded JSON parser (RFC 8259) for admin request
 * bodies: one pass, no recursion, no allocation. It fills a caller's array
 * of tokens (jsmn-like, each value one token, an object member a key token
 * followed by its value) and reports the byte offset of the first error.
 * Strings stay escaped in the text; the helpers decode them on demand. */
#ifndef RF_JSON_H
#define RF_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32       /* nested objects/arrays; deeper -> -ELOOP */

enum json_type {
	JSON_NONE = 0,
	JSON_OBJECT,
	JSON_ARRAY,
	JSON_STRING,            /* also object keys */
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
};

struct json_tok {
	uint8_t type;           /* enum json_type */
	uint32_t start;         /* offset of the value; strings: after the quote */
	uint32_t len;           /* bytes; strings: raw (escaped) content, no quotes */
	uint32_t size;          /* OBJECT: members, ARRAY: elements, else 0 */
	uint32_t next;          /* index of the first token after this value */
};

/* A parsed document: views into <text> (not copied, must outlive it). */
struct json_doc {
	const char *text;
	size_t len;
	struct json_tok *toks;  /* the caller's array */
	uint32_t ntoks;
	uint32_t max;
	size_t err_off;         /* after a failure: offset of the offending byte */
	const char *err;        /* after a failure: a static message */
};

/* Parse <len> bytes of <text> (one JSON value, surrounding white space
 * allowed) into <toks> (room for <max>). Token 0 is the top-level value.
 * Returns 0, or on failure sets d->err and d->err_off and returns
 * -EINVAL (syntax, invalid UTF-8 or escape), -ELOOP (nested deeper than
 * JSON_MAX_DEPTH) or -E2BIG (more than <max> values, or text over 4 GiB). */
int json_parse(struct json_doc *d, const char *text, size_t len,
	       struct json_tok *toks, uint32_t max);

/* The value of member <key> of object <obj> (first match), as a token
 * index; -ENOENT when absent, -EINVAL when <obj> is not an object. */
int json_get(const struct json_doc *d, int obj, const char *key);

/* First child of an array/object (the first element or key), and the next
 * sibling of a value (for members: key -> value -> next key). Callers
 * bound their loops with the container's size. */
static inline int json_child(int tok) { return tok + 1; }
static inline int json_next(const struct json_doc *d, int tok)
{
	return (int)d->toks[tok].next;
}

static inline int json_type(const struct json_doc *d, int tok)
{
	return tok >= 0 && (uint32_t)tok < d->ntoks ? d->toks[tok].type : JSON_NONE;
}

/* Decode string token <tok> into <buf> (<cap> bytes, NUL-terminated).
 * Returns the decoded length, -EINVAL (not a string, or it holds U+0000:
 * C strings cannot carry it) or -ENOSPC. */
int json_str(const struct json_doc *d, int tok, char *buf, size_t cap);

/* Does string token <tok> decode to exactly <s>? */
int json_str_eq(const struct json_doc *d, int tok, const char *s);

/* Number token <tok> as a double (-EINVAL not a number, -ERANGE overflow),
 * or as an unsigned integer: digits only, or an integral value below 2^53
 * written with a fraction or exponent (-EINVAL negative or fractional,
 * -ERANGE beyond <max>). */
int json_double(const struct json_doc *d, int tok, double *out);
int json_u64(const struct json_doc *d, int tok, uint64_t max, uint64_t *out);

/* true/false token -> 1/0; -EINVAL for anything else. */
int json_bool(const struct json_doc *d, int tok, int *out);

/* Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80,
 * <end> the length of <s>), or 0: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
size_t json_utf8_len(const unsigned char *s, size_t i, size_t end);

/* Name of a type for error messages ("object", "string", ...). */
const char *json_type_name(int type);

#endif
