/* config.c - the INI loader's line parser: headers, "key = value" lines,
 * quotes and comments, FILE:LINE in front of every error. Each key goes to
 * its section's table row (config_sections.c), whose setter parses the
 * value (config_values.c); the whole-file checks run at the end. Also
 * config_parse(), config_load() and config_dump_keys(). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "common.h"
#include "config_int.h"

#define CONFIG_MAX_FILE (1u << 20)   /* no real config is this big: refuse garbage */

/* "FILE:LINE: message" (or "FILE: message" for line 0) into the caller's buffer. */
__attribute__((format(printf, 4, 5)))
int perr(struct parser *p, int line, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->err || !p->errlen)
		return rc;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->name);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int apply_defaults(struct parser *p, const struct key_def *keys, size_t n, void *base)
{
	struct why w;
	size_t i;

	for (i = 0; i < n; i++)
		if (keys[i].def && set_value(&keys[i], base, keys[i].def, &w))
			return perr(p, 0, -EINVAL, "internal error: bad default for '%s': '%s' (%s)",
				    keys[i].name, keys[i].def, w.msg);
	return 0;
}

const char *sec_label(const struct parser *p, char *buf, size_t n)
{
	if (p->sec->named)
		snprintf(buf, n, "[%s %s]", p->sec->name,
			 ((const struct rf_upstream_conf *)p->base)->name);
	else
		snprintf(buf, n, "[%s]", p->sec->name);
	return buf;
}

const struct key_def *find_key(const struct section_def *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++)
		if (!strcmp(s->keys[i].name, name))
			return &s->keys[i];
	return NULL;
}

/* Required keys and cross-key checks run when a section is complete. */
static int end_section(struct parser *p)
{
	const struct section_def *s = p->sec;
	char label[RF_NAME_MAX + 32];
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < s->nkeys; i++)
		if (!s->keys[i].def && !p->key_line[i])
			return perr(p, p->sec_line, -EINVAL, "missing required key '%s' in %s",
				    s->keys[i].name, sec_label(p, label, sizeof label));
	return s->end ? s->end(p) : 0;
}

static int parse_header(struct parser *p, char *s)
{
	char *close = strchr(s, ']'), *rest, *word, *arg;
	size_t i;
	int rc;

	if (!close)
		return perr(p, p->line, -EINVAL, "unterminated section header '%s'", s);
	rest = trim(close + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return perr(p, p->line, -EINVAL, "unexpected text after section header: '%s'", rest);
	*close = 0;
	word = trim(s + 1);
	for (arg = word; *arg && !is_ws(*arg); arg++)
		;
	if (*arg)
		*arg++ = 0;
	arg = trim(arg);

	rc = end_section(p);
	if (rc)
		return rc;
	for (i = 0; i < SEC_COUNT && strcmp(sections[i].name, word); i++)
		;
	if (i == SEC_COUNT)
		return perr(p, p->line, -EINVAL, "unknown section [%s]", word);
	if (sections[i].named && !*arg)
		return perr(p, p->line, -EINVAL, "section [%s] needs a name, e.g. [%s app]",
			    word, word);
	if (!sections[i].named && *arg)
		return perr(p, p->line, -EINVAL, "section [%s] takes no name", word);
	/* a second [server] would make "duplicate key" depend on section order */
	if (!sections[i].named && p->first[i])
		return perr(p, p->line, -EINVAL, "duplicate section [%s] (first at line %d)",
			    word, p->first[i]);
	if (!p->first[i])
		p->first[i] = p->line;
	p->sec = &sections[i];
	p->sec_line = p->line;
	p->base = p->cfg;
	memset(p->key_line, 0, sizeof p->key_line);
	return p->sec->begin ? p->sec->begin(p, arg) : 0;
}

/* Strip an optional pair of quotes, else a comment that starts after
 * whitespace, then surrounding whitespace. */
static int clean_value(struct parser *p, const char *key, char *v, char **out)
{
	char *c, *rest;

	while (is_ws(*v))
		v++;
	if (*v == '"') {
		c = strchr(v + 1, '"');
		if (!c)
			return perr(p, p->line, -EINVAL, "unterminated quote in value of '%s'", key);
		rest = trim(c + 1);
		if (*rest && *rest != ';' && *rest != '#')
			return perr(p, p->line, -EINVAL,
				    "unexpected text after closing quote in value of '%s': '%s'",
				    key, rest);
		*c = 0;
		*out = v + 1;
		return 0;
	}
	for (c = v; *c; c++) {
		if ((*c == ';' || *c == '#') && (c == v || is_ws(c[-1]))) {
			*c = 0;
			break;
		}
	}
	*out = trim(v);
	return 0;
}

static int parse_line(struct parser *p, char *s)
{
	const struct key_def *k;
	char label[RF_NAME_MAX + 32], *eq, *key, *val = NULL;
	struct why w;
	size_t idx;
	int rc;

	if (p->line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
		s += 3;   /* UTF-8 byte order mark from some editors */
	s = trim(s);
	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return parse_header(p, s);
	eq = strchr(s, '=');
	if (!eq)
		return perr(p, p->line, -EINVAL, "missing '=' in '%s' (expected key = value)", s);
	*eq = 0;
	key = trim(s);
	if (!*key)
		return perr(p, p->line, -EINVAL, "missing key before '='");
	rc = clean_value(p, key, eq + 1, &val);
	if (rc)
		return rc;
	if (!p->sec)
		return perr(p, p->line, -EINVAL, "key '%s' outside of any section", key);
	if (p->sec->entry)
		return p->sec->entry(p, key, val);

	k = find_key(p->sec, key);
	if (!k)
		return perr(p, p->line, -EINVAL, "unknown key '%s' in %s", key,
			    sec_label(p, label, sizeof label));
	idx = (size_t)(k - p->sec->keys);
	if (p->key_line[idx])
		return perr(p, p->line, -EINVAL, "duplicate key '%s' in %s", key,
			    sec_label(p, label, sizeof label));
	p->key_line[idx] = p->line;
	rc = set_value(k, p->base, val, &w);
	if (rc)
		return perr(p, p->line, rc, rc == -ERANGE ? "'%s' out of range: '%s' (%s)" :
			    "bad value for '%s': '%s' (%s)", key, w.tok[0] ? w.tok : val, w.msg);
	return 0;
}

int config_parse(const char *name, const char *text, size_t len,
		 struct rf_config **out, char *err, size_t errlen)
{
	struct parser p = { .name = name, .err = err, .errlen = errlen };
	const char *nul = memchr(text, 0, len);
	char *buf, *line, *next;
	uint32_t i;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	p.cfg = rf_xcalloc(1, sizeof *p.cfg);
	p.cfg->path = rf_xstrdup(name);
	rc = apply_defaults(&p, sections[SEC_SERVER].keys, sections[SEC_SERVER].nkeys, p.cfg);
	if (!rc && nul) {
		for (i = 1; text < nul; text++)
			i += *text == '\n';
		rc = perr(&p, (int)i, -EINVAL, "NUL byte (not a text file?)");
	}
	if (!rc) {
		buf = rf_xstrndup(text, len);
		for (line = buf; line && !rc; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			p.line++;
			rc = parse_line(&p, line);
		}
		free(buf);
	}
	if (!rc)
		rc = end_section(&p);
	if (!rc)
		rc = route_finish(&p);
	if (!rc)
		rc = ratelimit_finish(&p);

	for (i = 0; p.route_up && i < p.cfg->nroutes; i++)
		free(p.route_up[i]);
	free(p.route_up);
	if (rc) {
		config_free(p.cfg);
		return rc;
	}
	*out = p.cfg;
	return 0;
}

int config_load(const char *path, struct rf_config **out, char *err, size_t errlen)
{
	struct parser p = { .name = path, .err = err, .errlen = errlen };
	FILE *f = fopen(path, "re");
	int rc = errno;
	char *buf;
	size_t len;

	*out = NULL;
	if (!f)
		return perr(&p, 0, -rc, "cannot open: %s", strerror(rc));
	buf = rf_xcalloc(1, CONFIG_MAX_FILE + 1);   /* +1 tells "too big" from "exactly the limit" */
	errno = 0;
	len = fread(buf, 1, CONFIG_MAX_FILE + 1, f);
	rc = errno ? errno : EIO;
	if (ferror(f))
		rc = perr(&p, 0, -rc, "cannot read: %s", strerror(rc));
	else if (len > CONFIG_MAX_FILE)
		rc = perr(&p, 0, -EFBIG, "larger than %u bytes", CONFIG_MAX_FILE);
	else
		rc = config_parse(path, buf, len, out, err, errlen);
	if (rc == 0) {
		/* kept: a services change rebuilds from the file's text as it was */
		char *shrunk = realloc(buf, len + 1);

		(*out)->source = shrunk ? shrunk : buf;
		(*out)->source_len = len;
	} else {
		free(buf);
	}
	fclose(f);
	return rc;
}

void config_dump_keys(FILE *out)
{
	const struct section_def *s;
	const struct key_def *k;
	size_t i, j;

	for (i = 0; i < SEC_COUNT; i++) {
		s = &sections[i];
		fprintf(out, "%s[%s%s%s]\n; %s\n", i ? "\n" : "", s->name, s->named ? " " : "",
			s->named ? (s->example ? s->example : "app") : "", s->help);
		if (!s->keys)
			fprintf(out, "%s", s->example ? s->example : "; /api = app\n; / = app\n");
		for (j = 0; j < s->nkeys; j++) {
			k = &s->keys[j];
			fprintf(out, "\n; %s\n", k->help);
			if (k->def)
				fprintf(out, "%s =%s%s\n", k->name, *k->def ? " " : "", k->def);
			else
				fprintf(out, "; (required, no default)\n%s =\n", k->name);
		}
	}
}
