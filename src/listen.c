/* listen.c - the endpoints of a configuration and their sockets. */
#include <errno.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "listen.h"

unsigned endpoints_collect(const struct rf_config *cfg, struct endpoint *out)
{
	unsigned n = 0, i;

	for (i = 0; i < cfg->nlisten; i++)
		out[n++] = (struct endpoint){ &cfg->listen[i], LISTEN_PROXY };
	if (cfg->admin.enabled)
		out[n++] = (struct endpoint){ &cfg->admin.listen[0], LISTEN_ADMIN };
	if (cfg->ratelimit.enabled && cfg->ratelimit.nlisten)
		out[n++] = (struct endpoint){ &cfg->ratelimit.listen[0], LISTEN_RL_LINE };
	if (cfg->cache.enabled && cfg->cache.nlisten)
		out[n++] = (struct endpoint){ &cfg->cache.listen[0], LISTEN_RESP };
	return n;
}

/* TCP_NODELAY set on the listener is inherited by accepted sockets, which
 * saves a setsockopt per connection. */
int endpoint_open(const struct endpoint *ep, int backlog)
{
	const struct rf_addr *a = ep->addr;
	int fd, one = 1, ret;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(fd, backlog) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Is something listening on the endpoint's address already? */
static int taken(const struct rf_addr *a)
{
	int probe = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = 0;

	if (probe < 0)
		return -errno;
	setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(probe, (const struct sockaddr *)&a->ss, a->len) < 0)
		ret = -errno;
	close(probe);
	return ret;
}

int endpoint_open_first(const struct endpoint *ep, int backlog)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	int ret, tries;

	/* SO_REUSEPORT would let a second ringfront (or anything run by the
	 * same user) share the port and take part of its traffic unseen: a
	 * socket without it finds out whether the port is taken. A process
	 * that just died may hold it for a moment more (the kernel tears its
	 * io_uring down after the exit), so a restart waits up to 5 s. */
	for (tries = 0; (ret = taken(ep->addr)) == -EADDRINUSE && tries < 50; tries++)
		nanosleep(&pause, NULL);
	return ret < 0 ? ret : endpoint_open(ep, backlog);
}

const char *listen_kind_name(unsigned kind)
{
	static const char *const names[LISTEN_KINDS] = { "proxy", "admin", "ratelimit", "cache" };

	return kind < LISTEN_KINDS ? names[kind] : "?";
}
