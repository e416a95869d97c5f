/* fleet - start N demo-backend processes on consecutive ports, wait until
 * they listen, and stop them all on Ctrl-C or SIGTERM. Unknown flags are
 * passed through to every backend: fleet --servers=4 --start-port=9001 --delay-ms 5 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS   1000
#define READY_MS      5000    /* how long a backend may take to listen */
#define STOP_MS       3000    /* SIGTERM grace before SIGKILL */

struct child {
	pid_t pid;      /* 0 once reaped */
	int port;
};

static struct child kids[MAX_SERVERS];
static int nkids, nlive;
static bool stopping;

static void usage(void)
{
	fprintf(stderr,
		"usage: fleet --servers=N --start-port=P [demo-backend flags...]\n"
		"  starts N demo-backends on ports P..P+N-1; other flags (e.g. --delay-ms 5)\n"
		"  go to every backend. Ctrl-C or SIGTERM stops them all.\n");
	exit(2);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* "--name=V" or "--name V"; returns V or NULL when argv[*i] is not --name. */
static const char *opt_val(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0 || (argv[*i][n] && argv[*i][n] != '='))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (*i + 1 >= argc)
		usage();
	return argv[++*i];
}

static long num(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		usage();
	return v;
}

/* Reap whatever exited; unexpected deaths are logged. */
static void reap(void)
{
	int st, i;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < nkids && kids[i].pid != pid; i++)
			;
		if (i == nkids)
			continue;
		kids[i].pid = 0;
		nlive--;
		if (stopping)
			continue;
		if (WIFSIGNALED(st))
			fprintf(stderr, "fleet: demo-backend on port %d (pid %d) killed by signal %d\n",
				kids[i].port, (int)pid, WTERMSIG(st));
		else
			fprintf(stderr, "fleet: demo-backend on port %d (pid %d) exited with status %d\n",
				kids[i].port, (int)pid, WEXITSTATUS(st));
	}
}

/* Stop every live child: SIGTERM, a grace period, then SIGKILL. */
static void stop_all(void)
{
	struct timespec ts = { 0, 20 * 1000000L };
	long deadline = now_ms() + STOP_MS;
	sigset_t chld;
	int i;

	stopping = true;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	reap();
	for (i = 0; i < nkids; i++)
		if (kids[i].pid)
			kill(kids[i].pid, SIGTERM);
	while (nlive && now_ms() < deadline) {
		sigtimedwait(&chld, NULL, &ts);
		reap();
	}
	for (i = 0; i < nkids; i++) {
		if (kids[i].pid) {
			fprintf(stderr, "fleet: pid %d ignored SIGTERM, killing it\n", (int)kids[i].pid);
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
			kids[i].pid = 0;
		}
	}
}

/* Would a server be able to listen on port? Catches a busy port up front,
 * with a clear message, instead of a child dying right after start. */
static bool port_free(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	bool ok;

	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool listening(const char *host, int port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai;
	char ps[8];
	int fd;
	bool ok = false;

	/* a wildcard listener is reached through loopback */
	if (!strcmp(host, "0.0.0.0"))
		host = "127.0.0.1";
	else if (!strcmp(host, "::"))
		host = "::1";
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai))
		return false;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

static pid_t spawn(const char *exe, int port, char **extra, int nextra)
{
	char ps[8], *argv[nextra + 4];
	sigset_t none;
	pid_t parent = getpid(), pid;
	int i;

	snprintf(ps, sizeof(ps), "%d", port);
	argv[0] = (char *)exe;
	argv[1] = "--port";
	argv[2] = ps;
	for (i = 0; i < nextra; i++)
		argv[3 + i] = extra[i];
	argv[3 + nextra] = NULL;

	pid = fork();
	if (pid != 0)
		return pid;
	/* the child: undo our signal mask, and die with the fleet even if
	 * the fleet itself is SIGKILLed */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	execv(exe, argv);
	fprintf(stderr, "fleet: cannot run %s: %s\n", exe, strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], exe[PATH_MAX + 16], *extra[argc];
	const char *host = "127.0.0.1", *v;
	int servers = 0, start = 0, nextra = 0, i, sig;
	long deadline;
	ssize_t n;
	sigset_t mask;

	for (i = 1; i < argc; i++) {
		if ((v = opt_val(argc, argv, &i, "--servers"))) {
			servers = (int)num(v, 1, MAX_SERVERS);
		} else if ((v = opt_val(argc, argv, &i, "--start-port"))) {
			start = (int)num(v, 1, 65535);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage();
		} else {
			/* pass through; remember --host to probe the right address */
			if (!strcmp(argv[i], "--host") && i + 1 < argc)
				host = argv[i + 1];
			else if (!strncmp(argv[i], "--host=", 7))
				host = argv[i] + 7;
			extra[nextra++] = argv[i];
		}
	}
	if (!servers || !start)
		usage();
	if (start + servers - 1 > 65535) {
		fprintf(stderr, "fleet: ports %d..%d run past 65535\n", start, start + servers - 1);
		return 2;
	}

	/* demo-backend lives next to this binary */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		perror("fleet: /proc/self/exe");
		return 1;
	}
	self[n] = 0;
	snprintf(exe, sizeof(exe), "%s/demo-backend", dirname(self));
	if (access(exe, X_OK) != 0) {
		fprintf(stderr, "fleet: %s: %s (run make first)\n", exe, strerror(errno));
		return 1;
	}
	for (i = 0; i < servers; i++) {
		if (!port_free(start + i)) {
			fprintf(stderr, "fleet: port %d is already in use; is another fleet "
				"or demo-backend running? (try: ss -ltnp 'sport = :%d')\n",
				start + i, start + i);
			return 1;
		}
	}

	/* Ctrl-C, SIGTERM and child exits are taken synchronously. SIGINT is
	 * reset first: a non-interactive shell starts background jobs with
	 * SIGINT ignored. */
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	for (i = 0; i < servers; i++) {
		kids[i].port = start + i;
		kids[i].pid = spawn(exe, start + i, extra, nextra);
		if (kids[i].pid < 0) {
			perror("fleet: fork");
			stop_all();
			return 1;
		}
		nkids++;
		nlive++;
	}

	/* wait until every backend accepts connections */
	deadline = now_ms() + READY_MS;
	for (i = 0; i < servers; i++) {
		struct timespec ts = { 0, 20 * 1000000L };
		siginfo_t si;

		while (kids[i].pid && !listening(host, kids[i].port)) {
			sig = sigtimedwait(&mask, &si, &ts);
			if (sig == SIGINT || sig == SIGTERM) {
				stop_all();
				return 0;
			}
			reap();
			if (now_ms() > deadline) {
				fprintf(stderr, "fleet: demo-backend on port %d is not listening "
					"after %d ms\n", kids[i].port, READY_MS);
				break;
			}
		}
		if (!kids[i].pid || now_ms() > deadline) {
			fprintf(stderr, "fleet: a backend failed to start; stopping the rest\n");
			stop_all();
			return 1;
		}
	}
	for (i = 0; i < servers; i++)
		fprintf(stderr, "fleet: demo-backend pid %d on %s:%d\n",
			(int)kids[i].pid, host, kids[i].port);
	fprintf(stderr, "fleet: %d server%s ready on ports %d-%d (Ctrl-C stops them)\n",
		servers, servers == 1 ? "" : "s", start, start + servers - 1);

	for (;;) {
		sig = sigwaitinfo(&mask, NULL);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (sig == SIGCHLD) {
			reap();
			if (!nlive) {
				fprintf(stderr, "fleet: every demo-backend has exited\n");
				return 1;
			}
		}
	}
	stop_all();
	fprintf(stderr, "fleet: stopped %d server%s\n", servers, servers == 1 ? "" : "s");
	return 0;
}
