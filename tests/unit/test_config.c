/* test_config.c - the INI loader: defaults, every value type, bounds, every
 * error with its exact "file:line:" prefix, routes, and that conf/default.ini
 * loads, lists every key and states the real defaults. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "services.h"
#include "test.h"

/* Minimal upstream so a config is otherwise valid. */
#define UP "[upstream app]\nservers = 127.0.0.1:9001\n"

static struct rf_config *parse_at(int line, const char *text)
{
	struct rf_config *c = NULL;
	char err[512];
	int rc = config_parse("t.ini", text, strlen(text), &c, err, sizeof err);

	if (rc || !c) {
		test_cur_failed++;
		fprintf(stderr, "  line %d: %s: unexpected error %d: %s\n",
			line, test_cur_name, rc, err);
	}
	return c;
}
#define PARSE(text) parse_at(__LINE__, text)

/* The parse must fail with exactly <msg>. */
static void fail_at(int line, const char *text, const char *msg)
{
	struct rf_config *c = (struct rf_config *)1;
	char err[512];
	int rc = config_parse("t.ini", text, strlen(text), &c, err, sizeof err);

	if (rc >= 0 || c != NULL || strcmp(err, msg) != 0) {
		test_cur_failed++;
		fprintf(stderr, "  line %d: %s: rc %d, err \"%s\", expected \"%s\"\n",
			line, test_cur_name, rc, err, msg);
	}
	config_free(rc ? NULL : c);
}
#define FAIL(text, msg) fail_at(__LINE__, text, msg)

static void test_defaults(void)
{
	struct rf_config *c = PARSE(UP);
	struct rf_upstream_conf *u;
	struct sockaddr_in *s4;

	if (!c)
		return;
	CHECK_STR(c->path, "t.ini");
	CHECK_INT(c->nlisten, 1);
	CHECK_STR(c->listen[0].text, "0.0.0.0:8080");
	s4 = (struct sockaddr_in *)&c->listen[0].ss;
	CHECK_INT(s4->sin_family, AF_INET);
	CHECK_INT(ntohs(s4->sin_port), 8080);
	CHECK_INT(s4->sin_addr.s_addr, htonl(INADDR_ANY));
	CHECK_INT(c->listen[0].len, sizeof(struct sockaddr_in));
	CHECK_INT(c->workers, 0);
	CHECK_INT(c->max_connections, 10000);
	CHECK_INT(c->header_timeout_ms, 10000);
	CHECK_INT(c->keepalive_timeout_ms, 75000);
	CHECK_INT(c->shutdown_timeout_ms, 10000);
	CHECK_INT(c->max_header_size, 8192);
	CHECK_INT(c->max_uri_size, 4096);
	CHECK_INT(c->max_body_size, 0);
	CHECK_INT(c->recv_buffers, 1024);
	CHECK_INT(c->recv_buffer_size, 16384);
	CHECK_INT(c->log_level, RF_LOG_INFO);
	CHECK(c->log_file == NULL);
	CHECK(c->access_log == NULL);

	CHECK_INT(c->nupstreams, 1);
	u = &c->upstreams[0];
	CHECK_STR(u->name, "app");
	CHECK_INT(u->line, 1);
	CHECK_INT(u->nservers, 1);
	CHECK_STR(u->servers[0].addr.text, "127.0.0.1:9001");
	CHECK_INT(u->servers[0].weight, 1);
	CHECK_INT(u->balance, RF_BAL_ROUND_ROBIN);
	CHECK_STR(u->health_path, "/health");
	CHECK_INT(u->health_interval_ms, 5000);
	CHECK_INT(u->health_timeout_ms, 2000);
	CHECK_INT(u->fall, 3);
	CHECK_INT(u->rise, 2);
	CHECK_INT(u->max_retries, 1);
	CHECK_INT(u->keepalive, 32);
	CHECK_INT(u->connect_timeout_ms, 5000);
	CHECK_INT(u->response_timeout_ms, 60000);

	/* implicit route: one upstream, no [route] section */
	CHECK_INT(c->nroutes, 1);
	CHECK_STR(c->routes[0].prefix, "/");
	CHECK_INT(c->routes[0].upstream, 0);
	config_free(c);
}

static void test_sizes(void)
{
	uint64_t v = 99;

	CHECK_INT(config_parse_size("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(config_parse_size("512", &v), 0);
	CHECK_INT(v, 512);
	CHECK_INT(config_parse_size("4k", &v), 0);
	CHECK_INT(v, 4096);
	CHECK_INT(config_parse_size("4K", &v), 0);
	CHECK_INT(v, 4096);
	CHECK_INT(config_parse_size("1m", &v), 0);
	CHECK_INT(v, 1048576);
	CHECK_INT(config_parse_size("1g", &v), 0);
	CHECK_INT(v, 1073741824);
	CHECK_INT(config_parse_size("3G", &v), 0);
	CHECK_INT(v, 3ull << 30);
	CHECK_INT(config_parse_size("", &v), -EINVAL);
	CHECK_INT(config_parse_size("k", &v), -EINVAL);
	CHECK_INT(config_parse_size("4x", &v), -EINVAL);
	CHECK_INT(config_parse_size("4kb", &v), -EINVAL);
	CHECK_INT(config_parse_size("-1", &v), -EINVAL);
	CHECK_INT(config_parse_size("+1", &v), -EINVAL);
	CHECK_INT(config_parse_size(" 1", &v), -EINVAL);
	CHECK_INT(config_parse_size("4 k", &v), -EINVAL);
	CHECK_INT(config_parse_size("1.5k", &v), -EINVAL);
	CHECK_INT(config_parse_size("18446744073709551615", &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(config_parse_size("18446744073709551616", &v), -ERANGE);
	CHECK_INT(config_parse_size("17179869184g", &v), -ERANGE);
}

static void test_durations(void)
{
	uint64_t v = 99;

	CHECK_INT(config_parse_duration_ms("250ms", &v), 0);
	CHECK_INT(v, 250);
	CHECK_INT(config_parse_duration_ms("2s", &v), 0);
	CHECK_INT(v, 2000);
	CHECK_INT(config_parse_duration_ms("1m", &v), 0);
	CHECK_INT(v, 60000);
	CHECK_INT(config_parse_duration_ms("1h", &v), 0);
	CHECK_INT(v, 3600000);
	CHECK_INT(config_parse_duration_ms("7", &v), 0);
	CHECK_INT(v, 7000);
	CHECK_INT(config_parse_duration_ms("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(config_parse_duration_ms("", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("ms", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("5d", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("5sec", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("1.5s", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("-1s", &v), -EINVAL);
	CHECK_INT(config_parse_duration_ms("99999999999999999999", &v), -ERANGE);
	CHECK_INT(config_parse_duration_ms("18446744073709551615h", &v), -ERANGE);
}

/* Every key set to a non-default value through a config file. */
static void test_every_key(void)
{
	struct rf_config *c = PARSE(
		"[server]\n"
		"listen = 127.0.0.1:80 [::1]:8443\n"
		"workers = 4\n"
		"max_connections = 1000000\n"
		"header_timeout = 250ms\n"
		"keepalive_timeout = 2m\n"
		"shutdown_timeout = 0\n"
		"max_header_size = 64k\n"
		"max_uri_size = 256\n"
		"max_body_size = 1g\n"
		"recv_buffers = 64\n"
		"recv_buffer_size = 1m\n"
		"log_level = debug\n"
		"log_file = /var/log/ringfront.log\n"
		"access_log = /var/log/access.log\n"
		"[upstream api-v2.x_1]\n"
		"servers = 10.0.0.1:81\n"
		"balance = least_time\n"
		"health_path =\n"
		"health_interval = 1h\n"
		"health_timeout = 30\n"
		"fall = 100\n"
		"rise = 1\n"
		"max_retries = 0\n"
		"keepalive = 10000\n"
		"connect_timeout = 100ms\n"
		"response_timeout = 24h\n");
	struct rf_upstream_conf *u;

	if (!c)
		return;
	CHECK_INT(c->nlisten, 2);
	CHECK_STR(c->listen[0].text, "127.0.0.1:80");
	CHECK_STR(c->listen[1].text, "[::1]:8443");
	CHECK_INT(c->listen[1].ss.ss_family, AF_INET6);
	CHECK_INT(c->workers, 4);
	CHECK_INT(c->max_connections, 1000000);
	CHECK_INT(c->header_timeout_ms, 250);
	CHECK_INT(c->keepalive_timeout_ms, 120000);
	CHECK_INT(c->shutdown_timeout_ms, 0);
	CHECK_INT(c->max_header_size, 65536);
	CHECK_INT(c->max_uri_size, 256);
	CHECK_INT(c->max_body_size, 1ull << 30);
	CHECK_INT(c->recv_buffers, 64);
	CHECK_INT(c->recv_buffer_size, 1 << 20);
	CHECK_INT(c->log_level, RF_LOG_DEBUG);
	CHECK_STR(c->log_file, "/var/log/ringfront.log");
	CHECK_STR(c->access_log, "/var/log/access.log");
	u = &c->upstreams[0];
	CHECK_STR(u->name, "api-v2.x_1");
	CHECK_INT(u->line, 16);
	CHECK_INT(u->balance, RF_BAL_LEAST_TIME);
	CHECK(u->health_path == NULL);
	CHECK_INT(u->health_interval_ms, 3600000);
	CHECK_INT(u->health_timeout_ms, 30000);
	CHECK_INT(u->fall, 100);
	CHECK_INT(u->rise, 1);
	CHECK_INT(u->max_retries, 0);
	CHECK_INT(u->keepalive, 10000);
	CHECK_INT(u->connect_timeout_ms, 100);
	CHECK_INT(u->response_timeout_ms, 86400000);
	config_free(c);

	/* enums are case-insensitive, workers = auto too */
	c = PARSE("[server]\nworkers = AUTO\nlog_level = Warn\n" UP "balance = Random2\n");
	if (c) {
		CHECK_INT(c->workers, 0);
		CHECK_INT(c->log_level, RF_LOG_WARN);
		CHECK_INT(c->upstreams[0].balance, RF_BAL_RANDOM2);
		config_free(c);
	}
}

static void test_bounds(void)
{
	FAIL("[server]\nworkers = abc\n" UP,
	     "t.ini:2: bad value for 'workers': 'abc' (expected a number or auto)");
	FAIL("[server]\nworkers = 0\n" UP,
	     "t.ini:2: 'workers' out of range: '0' (expected 1..256 or auto)");
	FAIL("[server]\nworkers = 257\n" UP,
	     "t.ini:2: 'workers' out of range: '257' (expected 1..256 or auto)");
	FAIL("[server]\nmax_connections = 0\n" UP,
	     "t.ini:2: 'max_connections' out of range: '0' (expected 1..1000000)");
	FAIL("[server]\nmax_connections = 99999999999999999999999\n" UP,
	     "t.ini:2: 'max_connections' out of range: '99999999999999999999999' (expected 1..1000000)");
	FAIL("[server]\nmax_connections = 10k\n" UP,
	     "t.ini:2: bad value for 'max_connections': '10k' (expected a number)");
	FAIL("[server]\nmax_header_size = 512\n" UP,
	     "t.ini:2: 'max_header_size' out of range: '512' (expected 1k..64k)");
	FAIL("[server]\nmax_header_size = 65537\n" UP,
	     "t.ini:2: 'max_header_size' out of range: '65537' (expected 1k..64k)");
	FAIL("[server]\nmax_header_size = 8q\n" UP,
	     "t.ini:2: bad value for 'max_header_size': '8q' (expected a size such as 512, 8k, 1m or 1g)");
	FAIL("[server]\nmax_uri_size = 255\n" UP,
	     "t.ini:2: 'max_uri_size' out of range: '255' (expected 256..64k)");
	FAIL("[server]\nrecv_buffer_size = 2m\n" UP,
	     "t.ini:2: 'recv_buffer_size' out of range: '2m' (expected 4k..1m)");
	FAIL("[server]\nheader_timeout = 25h\n" UP,
	     "t.ini:2: 'header_timeout' out of range: '25h' (expected 1ms..24h)");
	FAIL("[server]\nheader_timeout = 0\n" UP,
	     "t.ini:2: 'header_timeout' out of range: '0' (expected 1ms..24h)");
	FAIL("[server]\nkeepalive_timeout = 10 s\n" UP,
	     "t.ini:2: bad value for 'keepalive_timeout': '10 s' (expected a duration such as 250ms, 10s, 5m or 1h)");
	FAIL("[server]\nlog_level = verbose\n" UP,
	     "t.ini:2: bad value for 'log_level': 'verbose' (expected one of: error warn info debug)");
	FAIL(UP "fall = 0\n",
	     "t.ini:3: 'fall' out of range: '0' (expected 1..100)");
	FAIL(UP "rise = 101\n",
	     "t.ini:3: 'rise' out of range: '101' (expected 1..100)");
	FAIL(UP "max_retries = 11\n",
	     "t.ini:3: 'max_retries' out of range: '11' (expected 0..10)");
	FAIL(UP "keepalive = 10001\n",
	     "t.ini:3: 'keepalive' out of range: '10001' (expected 0..10000)");
	FAIL(UP "balance = fastest\n",
	     "t.ini:3: bad value for 'balance': 'fastest' (expected one of: round_robin weighted "
	     "least_conn ip_hash least_time adaptive random2)");
	FAIL(UP "health_path = health\n",
	     "t.ini:3: bad value for 'health_path': 'health' (must start with '/', or be empty to "
	     "disable checks)");
	FAIL(UP "health_path = /a b\n",
	     "t.ini:3: bad value for 'health_path': '/a b' (must not contain spaces or control "
	     "characters)");
	FAIL("[server]\nlisten = *:1 *:2 *:3 *:4 *:5 *:6 *:7 *:8 *:9\n" UP,
	     "t.ini:2: 'listen' out of range: '*:1 *:2 *:3 *:4 *:5 *:6 *:7 *:8 *:9' (at most 8 addresses)");
	FAIL("[server]\nlisten = *:80 0.0.0.0:80\n" UP,
	     "t.ini:2: bad value for 'listen': '0.0.0.0:80' (listed twice)");
	FAIL("[server]\nlisten =\n" UP,
	     "t.ini:2: bad value for 'listen': '' (expected host:port, several separated by spaces)");

	/* max_uri_size must fit in max_header_size: reported at the uri line */
	FAIL("[server]\nmax_uri_size = 16k\n\nmax_header_size = 8k\n" UP,
	     "t.ini:2: max_uri_size (16384) must not exceed max_header_size (8192)");
	FAIL("[server]\nmax_header_size = 2k\n" UP,
	     "t.ini:2: max_uri_size (4096) must not exceed max_header_size (2048)");
	config_free(PARSE("[server]\nmax_header_size = 2k\nmax_uri_size = 2k\n" UP));
}

static void test_recv_buffers_pow2(void)
{
	struct rf_config *c = PARSE("[server]\nrecv_buffers = 32768\n" UP);

	if (c)
		CHECK_INT(c->recv_buffers, 32768);
	config_free(c);
	FAIL("[server]\nrecv_buffers = 1000\n" UP,
	     "t.ini:2: bad value for 'recv_buffers': '1000' (expected a power of two from 64 to 32768)");
	FAIL("[server]\nrecv_buffers = 32\n" UP,
	     "t.ini:2: 'recv_buffers' out of range: '32' (expected a power of two from 64 to 32768)");
	FAIL("[server]\nrecv_buffers = 65536\n" UP,
	     "t.ini:2: 'recv_buffers' out of range: '65536' (expected a power of two from 64 to 32768)");
}

static void test_structure_errors(void)
{
	FAIL("[server]\n[servers]\n" UP, "t.ini:2: unknown section [servers]");
	FAIL("[server]\nworkers = 2\n\n; c\nlistn = x\n" UP,
	     "t.ini:5: unknown key 'listn' in [server]");
	FAIL(UP "\nbalanse = weighted\n", "t.ini:4: unknown key 'balanse' in [upstream app]");
	FAIL(UP "balance = weighted\n# x\nbalance = random2\n",
	     "t.ini:5: duplicate key 'balance' in [upstream app]");
	FAIL("[server]\nworkers = 1\nworkers = 2\n" UP, "t.ini:3: duplicate key 'workers' in [server]");
	FAIL(UP "\n" UP, "t.ini:4: duplicate upstream 'app' (first at line 1)");
	FAIL("[server]\n[server]\n" UP, "t.ini:2: duplicate section [server] (first at line 1)");
	FAIL(UP "[route]\n/ = app\n[route]\n", "t.ini:5: duplicate section [route] (first at line 3)");
	FAIL("[server]\nlisten 0.0.0.0:80\n" UP,
	     "t.ini:2: missing '=' in 'listen 0.0.0.0:80' (expected key = value)");
	FAIL("[server]\n = 3\n" UP, "t.ini:2: missing key before '='");
	FAIL("\n[server\n" UP, "t.ini:2: unterminated section header '[server'");
	FAIL("[server] x\n" UP, "t.ini:1: unexpected text after section header: 'x'");
	FAIL("[upstream]\nservers = 1.1.1.1:80\n",
	     "t.ini:1: section [upstream] needs a name, e.g. [upstream app]");
	FAIL("[server main]\n" UP, "t.ini:1: section [server] takes no name");
	FAIL("[upstream a/b]\n", "t.ini:1: bad upstream name 'a/b' (letters, digits, '_', '.', '-', "
	     "at most 63)");
	FAIL("[upstream a b]\n", "t.ini:1: bad upstream name 'a b' (letters, digits, '_', '.', '-', "
	     "at most 63)");
	FAIL("; top\nworkers = 2\n", "t.ini:2: key 'workers' outside of any section");
	FAIL("[server]\naccess_log = \"/tmp/x\n" UP, "t.ini:2: unterminated quote in value of 'access_log'");
	FAIL("[server]\naccess_log = \"/tmp/x\" y\n" UP,
	     "t.ini:2: unexpected text after closing quote in value of 'access_log': 'y'");
	FAIL("[server]\nworkers = 2\n", "t.ini: no [upstream] section");
	FAIL("", "t.ini: no [upstream] section");
	/* a NUL byte: needs the real length, strlen() would stop at it */
	{
		static const char text[] = "[server]\nwor\0kers = 2\n" UP;
		struct rf_config *c = NULL;
		char err[256];
		int rc = config_parse("t.ini", text, sizeof text - 1, &c, err, sizeof err);

		CHECK_INT(rc, -EINVAL);
		CHECK(c == NULL);
		CHECK_STR(err, "t.ini:2: NUL byte (not a text file?)");
	}
}

static void test_missing_servers(void)
{
	FAIL("[server]\n\n[upstream app]\nbalance = weighted\n[route]\n/ = app\n",
	     "t.ini:3: missing required key 'servers' in [upstream app]");
	FAIL("[upstream app]\n", "t.ini:1: missing required key 'servers' in [upstream app]");
	FAIL("[upstream app]\nservers =   ; none\n",
	     "t.ini:2: bad value for 'servers': '' (expected at least one host:port)");
	FAIL("[upstream app]\nservers = weight=2\n",
	     "t.ini:2: bad value for 'servers': 'weight=2' (weight= must follow a server address)");
}

static void test_comments(void)
{
	struct rf_config *c = PARSE(
		"; full-line comment\n"
		"# another one\n"
		"   ; indented comment\n"
		"\n"
		"[server]   ; trailing comment on a header\n"
		"workers = 3   ; inline comment\n"
		"max_connections = 7\t# tab then hash\n"
		"log_file = /tmp/a#b\n"              /* '#' not after whitespace: part of the value */
		"access_log = \"/tmp/x ; y\"  ; quoted keeps ';'\n"
		"\t  log_level   =   warn   \n"
		"[upstream app]\n"
		"servers = 127.0.0.1:9001 ;127.0.0.1:9002\n"
		"health_path = ; no checks\n"
		"balance=weighted\r\n");

	if (!c)
		return;
	CHECK_INT(c->workers, 3);
	CHECK_INT(c->max_connections, 7);
	CHECK_STR(c->log_file, "/tmp/a#b");
	CHECK_STR(c->access_log, "/tmp/x ; y");
	CHECK_INT(c->log_level, RF_LOG_WARN);
	CHECK_INT(c->upstreams[0].nservers, 1);
	CHECK(c->upstreams[0].health_path == NULL);
	CHECK_INT(c->upstreams[0].balance, RF_BAL_WEIGHTED);
	config_free(c);

	/* "rise =# c" is an empty value, which is not a number */
	FAIL(UP "rise =# c\n", "t.ini:3: bad value for 'rise': '' (expected a number)");

	/* CRLF line ends and a UTF-8 byte order mark */
	c = PARSE("\xEF\xBB\xBF[server]\r\nworkers = 2\r\n\r\n[upstream app]\r\nservers = 127.0.0.1:1\r\n");
	if (c) {
		CHECK_INT(c->workers, 2);
		config_free(c);
	}
	FAIL("\xEF\xBB\xBF[server]\r\nworkers = x\r\n" UP,
	     "t.ini:2: bad value for 'workers': 'x' (expected a number or auto)");

	/* quotes: an empty pair is an empty value */
	c = PARSE("[server]\nlog_file = \"\"\n" UP);
	if (c) {
		CHECK(c->log_file == NULL);
		config_free(c);
	}
}

static void test_weights(void)
{
	struct rf_config *c = PARSE(
		"[upstream app]\n"
		"servers = 127.0.0.1:9001 weight=3 127.0.0.1:9002\t127.0.0.1:9003 weight=1000\n");
	struct rf_upstream_conf *u;

	if (!c)
		return;
	u = &c->upstreams[0];
	CHECK_INT(u->nservers, 3);
	CHECK_STR(u->servers[0].addr.text, "127.0.0.1:9001");
	CHECK_INT(u->servers[0].weight, 3);
	CHECK_STR(u->servers[1].addr.text, "127.0.0.1:9002");
	CHECK_INT(u->servers[1].weight, 1);
	CHECK_STR(u->servers[2].addr.text, "127.0.0.1:9003");
	CHECK_INT(u->servers[2].weight, 1000);
	CHECK_INT(ntohs(((struct sockaddr_in *)&u->servers[2].addr.ss)->sin_port), 9003);
	config_free(c);

	FAIL("[upstream app]\nservers = 127.0.0.1:1 weight=0\n",
	     "t.ini:2: 'servers' out of range: 'weight=0' (weight must be 1..1000)");
	FAIL("[upstream app]\nservers = 127.0.0.1:1 weight=1001\n",
	     "t.ini:2: 'servers' out of range: 'weight=1001' (weight must be 1..1000)");
	FAIL("[upstream app]\nservers = 127.0.0.1:1 weight=x\n",
	     "t.ini:2: bad value for 'servers': 'weight=x' (weight must be 1..1000)");
	FAIL("[upstream app]\nservers = 127.0.0.1:1 weight=2 weight=3\n",
	     "t.ini:2: bad value for 'servers': 'weight=3' (weight given twice for 127.0.0.1:1)");
	FAIL("[upstream app]\nservers = 127.0.0.1:1 127.0.0.1\n",
	     "t.ini:2: bad value for 'servers': '127.0.0.1' (missing :port)");
}

static void test_addr(void)
{
	struct rf_addr a;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;

	CHECK_INT(config_parse_addr("1.2.3.4:80", &a), 0);
	CHECK_INT(s4->sin_family, AF_INET);
	CHECK_INT(ntohl(s4->sin_addr.s_addr), 0x01020304);
	CHECK_INT(ntohs(s4->sin_port), 80);
	CHECK_INT(a.len, sizeof(struct sockaddr_in));
	CHECK_STR(a.text, "1.2.3.4:80");

	CHECK_INT(config_parse_addr("[::1]:8443", &a), 0);
	CHECK_INT(s6->sin6_family, AF_INET6);
	CHECK(memcmp(&s6->sin6_addr, &lo6, sizeof lo6) == 0);
	CHECK_INT(ntohs(s6->sin6_port), 8443);
	CHECK_INT(a.len, sizeof(struct sockaddr_in6));
	CHECK_STR(a.text, "[::1]:8443");

	CHECK_INT(config_parse_addr("[::]:1", &a), 0);
	CHECK_INT(s6->sin6_family, AF_INET6);

	CHECK_INT(config_parse_addr("*:65535", &a), 0);
	CHECK_INT(s4->sin_family, AF_INET);
	CHECK_INT(s4->sin_addr.s_addr, htonl(INADDR_ANY));
	CHECK_INT(ntohs(s4->sin_port), 65535);
	CHECK_STR(a.text, "*:65535");

	CHECK_INT(config_parse_addr(":8080", &a), 0);
	CHECK_INT(s4->sin_addr.s_addr, htonl(INADDR_ANY));

	/* a name: resolved now, whichever family comes first */
	CHECK_INT(config_parse_addr("localhost:81", &a), 0);
	CHECK(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
	if (a.ss.ss_family == AF_INET)
		CHECK_INT(ntohs(s4->sin_port), 81);
	else
		CHECK_INT(ntohs(s6->sin6_port), 81);
	CHECK_STR(a.text, "localhost:81");

	CHECK_INT(config_parse_addr("", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4:", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4:0", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4:65536", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4:80x", &a), -EINVAL);
	CHECK_INT(config_parse_addr("1.2.3.4:-1", &a), -EINVAL);
	CHECK_INT(config_parse_addr("10.0.0.300:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("::1:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("[::1]80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("[::1:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("[]:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("[zz::1]:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("[1.2.3.4]:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("bad/host:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("no-such-host.invalid:80", &a), -EINVAL);
	CHECK_INT(config_parse_addr("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80",
				    &a), -EINVAL);

	FAIL("[server]\nlisten = [::1]:80 ::1:81\n" UP,
	     "t.ini:2: bad value for 'listen': '::1:81' (IPv6 addresses need brackets, e.g. [::1]:8080)");
	FAIL("[server]\nlisten = 1.2.3.4:0\n" UP,
	     "t.ini:2: bad value for 'listen': '1.2.3.4:0' (port must be 1..65535)");
	FAIL("[upstream app]\nservers = [fe80::zz]:80\n",
	     "t.ini:2: bad value for 'servers': '[fe80::zz]:80' (bad IPv6 address)");
}

/* Dynamic services become upstreams and routes merged into the file's. */
static void test_merge_services(void)
{
	const char *a[] = { "http://127.0.0.1:7001/", "127.0.0.1:7002" };
	struct services none = { 0 }, one, two, gone;
	struct service s1, s2;
	struct rf_config *c = PARSE("[upstream web]\nservers = 127.0.0.1:1\n"), *dyn;
	char err[256];

	if (!c)
		return;
	CHECK_INT(service_make(&s1, "orders", a, 2, NULL, "least_conn", err, sizeof err), 0);
	CHECK_STR(s1.servers, "127.0.0.1:7001 127.0.0.1:7002");
	CHECK_STR(s1.route, "/orders/");
	CHECK_INT(service_make(&s2, "pay", a, 1, "/p/", NULL, err, sizeof err), 0);
	service_free(&s2);
	CHECK_INT(service_make(&s2, "a b", a, 1, NULL, NULL, err, sizeof err), -EINVAL);
	CHECK_INT(service_make(&s2, "pay", a, 0, NULL, NULL, err, sizeof err), -EINVAL);
	CHECK_INT(service_make(&s2, "pay", a, 1, "p", NULL, err, sizeof err), -EINVAL);
	CHECK_INT(service_make(&s2, "pay", a, 1, "/p/", NULL, err, sizeof err), 0);
	CHECK_INT(services_with(&one, &none, &s1, NULL), 0);
	CHECK_INT(services_with(&two, &one, &s2, NULL), 0);
	CHECK_INT(two.n, 2);
	CHECK_INT(services_with(&gone, &two, NULL, "nope"), -ENOENT);
	CHECK_INT(services_with(&gone, &two, NULL, "orders"), 0);
	CHECK_INT(gone.n, 1);
	CHECK_INT(services_config(&two, &dyn, err, sizeof err), 0);
	CHECK_INT(config_merge(c, dyn, err, sizeof err), 0);
	/* the file had no [route]: its implicit "/" stays last */
	CHECK_INT(c->nupstreams, 3);
	CHECK_INT(c->nroutes, 3);
	CHECK_STR(c->routes[0].prefix, "/orders/");
	CHECK_STR(c->upstreams[c->routes[0].upstream].name, "orders");
	CHECK_INT(c->upstreams[1].dynamic, 1);
	CHECK_INT(c->upstreams[1].balance, RF_BAL_LEAST_CONN);
	CHECK_INT(c->upstreams[1].nservers, 2);
	CHECK_STR(c->routes[2].prefix, "/");
	CHECK_INT(c->routes[2].upstream, 0);
	/* a name or prefix taken: refused, and the file's stays as it was */
	CHECK_INT(services_config(&one, &dyn, err, sizeof err), 0);
	CHECK_INT(config_merge(c, dyn, err, sizeof err), -EEXIST);
	CHECK_STR(err, "upstream 'orders' exists already");
	CHECK_INT(c->nupstreams, 3);
	services_free(&one);
	services_free(&two);
	services_free(&gone);
	service_free(&s1);
	service_free(&s2);
	config_free(c);
}

static void test_routes(void)
{
	/* [route] before the upstreams it names; equal lengths keep file order */
	struct rf_config *c = PARSE(
		"[route]\n"
		"/ = web\n"
		"/bb = api\n"
		"/api/v2 = api   ; longest\n"
		"/cc = web\n"
		"/a = api\n"
		"[upstream web]\nservers = 127.0.0.1:1\n"
		"[upstream api]\nservers = 127.0.0.1:2\n");
	static const char *const want[] = { "/api/v2", "/bb", "/cc", "/a", "/" };
	static const uint32_t want_up[] = { 1, 1, 0, 1, 0 };
	static const int want_line[] = { 4, 3, 5, 6, 2 };
	uint32_t i;

	if (!c)
		return;
	CHECK_INT(c->nupstreams, 2);
	CHECK_INT(c->nroutes, 5);
	for (i = 0; i < c->nroutes && i < ARRAY_SIZE(want); i++) {
		CHECK_STR(c->routes[i].prefix, want[i]);
		CHECK_INT(c->routes[i].upstream, want_up[i]);
		CHECK_INT(c->routes[i].line, want_line[i]);
	}
	config_free(c);

	/* an empty [route] section means no routes at all (every request 404s) */
	c = PARSE(UP "[route]\n");
	if (c) {
		CHECK_INT(c->nroutes, 0);
		config_free(c);
	}
	/* routes present but none for "/" is fine */
	c = PARSE(UP "[route]\n/api = app\n");
	if (c) {
		CHECK_INT(c->nroutes, 1);
		CHECK_STR(c->routes[0].prefix, "/api");
		config_free(c);
	}

	FAIL(UP "[route]\n/ = app\n\n/api = nope\n",
	     "t.ini:6: route '/api' names unknown upstream 'nope'");
	FAIL("[route]\n/x = nope\n" UP, "t.ini:2: route '/x' names unknown upstream 'nope'");
	FAIL(UP "[route]\n/api = app\n/api = app\n", "t.ini:5: duplicate route '/api' (first at line 4)");
	FAIL(UP "[route]\napi = app\n", "t.ini:4: route prefix 'api' must start with '/'");
	FAIL(UP "[route]\n/api =\n", "t.ini:4: route '/api' needs an upstream name");
	FAIL(UP "[route]\n/api = app other\n",
	     "t.ini:4: route option 'other' is not name=value");
	FAIL(UP "[route]\n/a b = app\n",
	     "t.ini:4: route prefix '/a b' contains spaces or control characters");

	/* require_key per route: default, off or on; on needs the API key header */
	c = PARSE(UP "[route]\n/a = app require_key=on\n/b = app require_key=off\n/ = app\n"
		  "[ratelimit]\nkey = header:X-Key\n");
	if (c) {
		CHECK_INT(c->routes[0].require_key, 2);
		CHECK_INT(c->routes[1].require_key, 1);
		CHECK_INT(c->routes[2].require_key, 0);
		config_free(c);
	}
	FAIL(UP "[route]\n/a = app require_key=maybe\n",
	     "t.ini:4: bad value for route option 'require_key': 'maybe' "
	     "(expected one of: default off on)");
	FAIL(UP "[route]\n/a = app require_key=on\n",
	     "t.ini:4: route '/a': require_key=on needs a [ratelimit] section with key = header:NAME");
	FAIL(UP "[ratelimit]\n[route]\n/a = app require_key=on\n",
	     "t.ini:5: route '/a': require_key=on needs a [ratelimit] section with key = header:NAME");
	FAIL(UP "[ratelimit]\nkey = header:K\n[route]\n/a = app key=ip require_key=on\n",
	     "t.ini:6: route '/a': require_key=on needs ratelimit=on and the [ratelimit] key "
	     "(no key=ip or key=ip+path)");
	FAIL(UP "[ratelimit]\nkey = header:K\n[route]\n/a = app ratelimit=off require_key=on\n",
	     "t.ini:6: route '/a': require_key=on needs ratelimit=on and the [ratelimit] key "
	     "(no key=ip or key=ip+path)");
	FAIL(UP "[upstream b]\nservers = 127.0.0.1:2\n",
	     "t.ini: 2 upstreams but no [route] section to choose between them");
	FAIL("[server]\n[route]\n/ = app\n", "t.ini: no [upstream] section");
}

static void test_many(void)
{
	/* enough upstreams and routes to grow the arrays a few times */
	char text[8192];
	struct rf_config *c;
	size_t n = 0;
	int i;

	for (i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "[upstream u%d]\nservers = 127.0.0.1:%d weight=%d\n",
				      i, 1000 + i, i + 1);
	n += (size_t)snprintf(text + n, sizeof text - n, "[route]\n");
	for (i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "/p%d = u%d\n", i, 19 - i);
	c = PARSE(text);
	if (!c)
		return;
	CHECK_INT(c->nupstreams, 20);
	CHECK_INT(c->nroutes, 20);
	CHECK_STR(c->upstreams[19].name, "u19");
	CHECK_INT(c->upstreams[19].servers[0].weight, 20);
	/* /p10../p19 (longer) first, in file order, then /p0../p9 */
	CHECK_STR(c->routes[0].prefix, "/p10");
	CHECK_INT(c->routes[0].upstream, 9);
	CHECK_STR(c->routes[10].prefix, "/p0");
	CHECK_INT(c->routes[10].upstream, 19);
	config_free(c);
}

static void test_err_buffer(void)
{
	struct rf_config *c = (struct rf_config *)1;
	char small[12];
	const char *text = "[server]\nlistn = 1\n";

	/* truncated, still terminated */
	CHECK_INT(config_parse("t.ini", text, strlen(text), &c, small, sizeof small), -EINVAL);
	CHECK(c == NULL);
	CHECK_STR(small, "t.ini:2: un");
	/* no buffer at all */
	CHECK_INT(config_parse("t.ini", text, strlen(text), &c, NULL, 0), -EINVAL);
}

static void test_load_missing(void)
{
	struct rf_config *c = (struct rf_config *)1;
	char err[256], want[256];
	int rc = config_load("conf/does-not-exist.ini", &c, err, sizeof err);

	CHECK_INT(rc, -ENOENT);
	CHECK(c == NULL);
	snprintf(want, sizeof want, "conf/does-not-exist.ini: cannot open: %s", strerror(ENOENT));
	CHECK_STR(err, want);

	rc = config_load("conf", &c, err, sizeof err);
	CHECK_INT(rc, -EISDIR);
	snprintf(want, sizeof want, "conf: cannot read: %s", strerror(EISDIR));
	CHECK_STR(err, want);
}

static void test_load_error_names_file(void)
{
	const char *path = "/tmp/ringfront_test_config.ini";
	struct rf_config *c = NULL;
	char err[256], want[300];
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs("[server]\nworkers = 2\n\n[upstream app]\nservers = 127.0.0.1:1\nfall = 0\n", f);
	fclose(f);
	CHECK_INT(config_load(path, &c, err, sizeof err), -ERANGE);
	snprintf(want, sizeof want, "%s:6: 'fall' out of range: '0' (expected 1..100)", path);
	CHECK_STR(err, want);
	remove(path);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = calloc(1, 1 << 16);
	n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Does <text> have a line starting with "<key>" then optional blanks and '='? */
static int has_key_line(const char *text, const char *key, size_t klen)
{
	const char *line = text, *s;

	for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, key, klen) != 0)
			continue;
		for (s = line + klen; *s == ' ' || *s == '\t'; s++)
			;
		if (*s == '=')
			return 1;
	}
	return 0;
}

static void test_default_ini(void)
{
	struct rf_config *c = NULL, *d;
	char err[512], *ini, *dump = NULL, *line, *eq;
	size_t dumplen = 0;
	FILE *f;
	int rc, nkeys = 0;

	rc = config_load("conf/default.ini", &c, err, sizeof err);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_STR(c->path, "conf/default.ini");
	CHECK_INT(c->nupstreams, 1);
	CHECK_STR(c->upstreams[0].name, "app");
	CHECK_INT(c->upstreams[0].nservers, 2);
	CHECK_STR(c->upstreams[0].servers[1].addr.text, "127.0.0.1:9002");
	/* the application does its own caching and admission on /users/ */
	CHECK_INT(c->nroutes, 2);
	CHECK_STR(c->routes[0].prefix, "/users/");
	CHECK_INT(c->routes[0].cache, 0);
	CHECK_INT(c->routes[0].ratelimit, 0);
	CHECK_STR(c->routes[1].prefix, "/");

	/* it states the real defaults: same as a config that sets nothing */
	d = PARSE("[upstream app]\nservers = 127.0.0.1:9001 127.0.0.1:9002\n");
	if (d) {
		CHECK_INT(c->nlisten, d->nlisten);
		CHECK(memcmp(&c->listen[0], &d->listen[0], sizeof c->listen[0]) == 0);
		CHECK(memcmp(&c->nlisten, &d->nlisten,
			     offsetof(struct rf_config, log_file) - offsetof(struct rf_config, nlisten)) == 0);
		CHECK(c->log_file == NULL && c->access_log == NULL);
		CHECK(memcmp(&c->upstreams[0].balance, &d->upstreams[0].balance,
			     offsetof(struct rf_upstream_conf, health_path) -
			     offsetof(struct rf_upstream_conf, balance)) == 0);
		CHECK_STR(c->upstreams[0].health_path, d->upstreams[0].health_path);
		CHECK(memcmp(&c->upstreams[0].health_interval_ms, &d->upstreams[0].health_interval_ms,
			     offsetof(struct rf_upstream_conf, line) -
			     offsetof(struct rf_upstream_conf, health_interval_ms)) == 0);
		config_free(d);
	}
	config_free(c);

	/* every key the tables know, as config_dump_keys() lists them, is in the file */
	ini = slurp("conf/default.ini");
	f = open_memstream(&dump, &dumplen);
	CHECK(ini != NULL && f != NULL);
	if (!ini || !f) {
		free(ini);
		return;
	}
	config_dump_keys(f);
	fclose(f);
	for (line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
		if (*line < 'a' || *line > 'z' || !(eq = strstr(line, " =")))
			continue;
		nkeys++;
		if (!has_key_line(ini, line, (size_t)(eq - line))) {
			test_cur_failed++;
			fprintf(stderr, "  conf/default.ini lacks '%.*s ='\n", (int)(eq - line), line);
		}
	}
	/* sections keep gaining keys: the dump must at least list the core ones */
	CHECK(nkeys >= 14 + 11 + 3);
	free(dump);
	free(ini);
}

static void test_dump(void)
{
	char *dump = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&dump, &len);

	if (!f)
		return;
	config_dump_keys(f);
	fclose(f);
	CHECK(strncmp(dump, "[server]\n; ", 11) == 0);
	CHECK(strstr(dump, "\nlisten = 0.0.0.0:8080\n") != NULL);
	CHECK(strstr(dump, "\nworkers = auto\n") != NULL);
	CHECK(strstr(dump, "\nlog_file =\n") != NULL);
	CHECK(strstr(dump, "\n[upstream app]\n") != NULL);
	CHECK(strstr(dump, "; (required, no default)\nservers =\n") != NULL);
	CHECK(strstr(dump, "\nbalance = round_robin\n") != NULL);
	CHECK(strstr(dump, "\n[route]\n") != NULL);
	CHECK(strstr(dump, "\n; / = app\n") != NULL);
	free(dump);
}

static void test_balance_names(void)
{
	uint32_t i, v;

	for (i = RF_BAL_ROUND_ROBIN; i <= RF_BAL_RANDOM2; i++) {
		CHECK_INT(config_balance_parse(config_balance_name(i), &v), 0);
		CHECK_INT(v, i);
	}
	CHECK_STR(config_balance_name(RF_BAL_LEAST_CONN), "least_conn");
	CHECK_STR(config_balance_name(RF_BAL_IP_HASH), "ip_hash");
	CHECK_STR(config_balance_name(99), "unknown");
	CHECK_INT(config_balance_parse("nope", &v), -EINVAL);
	CHECK_INT(config_balance_parse("", &v), -EINVAL);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_sizes);
	RUN(test_durations);
	RUN(test_every_key);
	RUN(test_bounds);
	RUN(test_recv_buffers_pow2);
	RUN(test_structure_errors);
	RUN(test_missing_servers);
	RUN(test_comments);
	RUN(test_weights);
	RUN(test_addr);
	RUN(test_routes);
	RUN(test_merge_services);
	RUN(test_many);
	RUN(test_err_buffer);
	RUN(test_load_missing);
	RUN(test_load_error_names_file);
	RUN(test_default_ini);
	RUN(test_dump);
	RUN(test_balance_names);
	TEST_REPORT();
}
