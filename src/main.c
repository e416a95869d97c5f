/* main.c - command line, configuration, listening sockets, worker threads
 * and signals. The main thread only waits for signals; workers do all I/O. */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "cache.h"
#include "cluster.h"
#include "config.h"
#include "io.h"
#include "proxy_cache.h"
#include "reload.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "persist.h"
#include "privdrop.h"
#include "uring_probe.h"
#include "worker.h"

#define RF_VERSION "0.1.0"
#define EXIT_STORE 3   /* the state store cannot be used: see the log */

#ifndef RF_LIBURING_VERSION
#define RF_LIBURING_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fputs("usage: ringfront [-t] -c FILE\n"
	      "       ringfront -k | -v | -h\n"
	      "  -c, --config FILE  configuration file (INI)\n"
	      "  -t, --test         check the configuration and exit (0 = valid)\n"
	      "  -k, --keys         print every configuration key with its default, then exit\n"
	      "  -v, --version      print the version and the io_uring features found, then exit\n"
	      "  -h, --help         print this help\n"
	      "signals: TERM, INT stop gracefully; HUP reload; USR1 reopen the log files\n"
	      "exit status: 0 ok, 1 configuration or run-time error, 2 usage error,\n"
	      "             3 the [store] directory cannot be used (locked, unreadable, newer format)\n",
	      out);
}

static void print_version(void)
{
	printf("ringfront %s\nliburing %s (built against)\n", RF_VERSION, RF_LIBURING_VERSION);
	fflush(stdout);
	uring_probe_print(stdout);
}

/* SIGUSR1, from logrotate's postrotate: the files were renamed, so open
 * them again by name. This runs with the identity left after the privilege
 * drop: that user must be able to create them (logrotate's `create`). */
static void reopen_logs(const struct rf_config *cfg)
{
	int ret;

	if (cfg->log_file && (ret = log_open(cfg->log_file)) < 0)
		log_error("msg=\"cannot reopen log file\" path=%s error=\"%s\"",
			  cfg->log_file, strerror(-ret));
	if (cfg->access_log && (ret = access_log_reopen(cfg->access_log)) < 0)
		log_error("msg=\"cannot reopen access log\" path=%s error=\"%s\"",
			  cfg->access_log, strerror(-ret));
	log_info("msg=\"log files reopened\"");
}

static void notify_ready(const struct rf_config *cfg, uint32_t nworkers)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %s with %u workers",
		 cfg->listen[0].text, nworkers);
	notify_send(msg);
}

/* Called once the listeners are bound (ports below 1024 need root or
 * CAP_NET_BIND_SERVICE) and before any worker creates its ring, so that
 * nothing runs as root that does not have to. Then the event backend is
 * chosen with the identity the workers will have. */
static int drop_privileges(const struct privdrop *pd, const struct rf_config *cfg)
{
	char err[256];

	if (pd->change) {
		if (privdrop_apply(pd, err, sizeof(err)) < 0) {
			log_error("msg=\"cannot drop privileges\" error=\"%s\"", err);
			return -1;
		}
		log_info("msg=\"privileges dropped\" uid=%u gid=%u", (unsigned)getuid(),
			 (unsigned)getgid());
	}
	return io_choose(cfg->io, pd->change) < 0 ? -1 : 0;
}

static uint32_t worker_count(const struct rf_config *cfg)
{
	long n;

	if (cfg->workers)
		return cfg->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

/* Raise the descriptor limit to its hard maximum, and warn when
 * max_connections cannot fit (each proxied request may need two fds). */
static void raise_fd_limit(const struct rf_config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
		log_warn("msg=\"descriptor limit below max_connections\" nofile=%llu max_connections=%u",
			 (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

/* The cache's writes are applied by each shard's worker: wake it. */
static void cache_wake_worker(void *arg, int worker)
{
	(void)arg;
	if (worker >= 0 && (uint32_t)worker < rf_nworkers)
		worker_wake(&rf_workers[worker]);
}

static int cache_start(const struct rf_config *cfg, uint32_t nworkers)
{
	uint32_t fill = 60000, i;
	struct cache_conf cc;
	int ret;

	for (i = 0; i < cfg->nupstreams; i++)
		fill = RF_MIN(fill, cfg->upstreams[i].response_timeout_ms);
	memset(&cc, 0, sizeof(cc));
	cc.memory = cfg->cache.memory;
	cc.max_object_size = cfg->cache.max_object_size;
	cc.nworkers = nworkers;
	cc.sweep_interval_ms = cfg->cache.sweep_interval_ms;
	cc.fill_timeout_ms = fill;
	ret = cache_create(&cc, &rf_cache);
	if (ret == 0)
		cache_set_waker(rf_cache, cache_wake_worker, NULL);
	return ret;
}

/* The state store cannot be used: undo run()'s set-up (<nfds> listening
 * sockets are open) and return the exit status that says so. */
static int store_failed(const char *err, struct worker *workers, int *fds, size_t nfds)
{
	size_t i;

	log_error("msg=\"state store unusable\" error=\"%s\"", err);
	persist_stop();
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	rf_workers = NULL;
	rf_nworkers = 0;
	free(workers);
	free(fds);
	return EXIT_STORE;
}

/* The signals the main thread takes: TERM and INT stop, HUP reloads, USR1
 * reopens the logs. */
static void main_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

/* Ask the <n> started workers to stop (RF_STOP_GRACEFUL or RF_STOP_NOW). */
static void request_stop(struct worker *workers, uint32_t n, int how)
{
	uint32_t i;

	atomic_store(&rf_stop_requested, how);
	for (i = 0; i < n; i++)
		worker_wake(&workers[i]);
}

struct main_loop {
	const struct rf_config *cfg;
	struct worker *workers;
	uint32_t n;
	int stop;                       /* 0, RF_STOP_GRACEFUL, RF_STOP_NOW */
	int status;                     /* the process's exit status */
};

static void on_signal(struct main_loop *m, int sig)
{
	if (sig == SIGINT || sig == SIGTERM) {
		if (!m->stop) {
			notify_send("STOPPING=1\nSTATUS=stopping");
			log_info("msg=\"stopping\" signal=%d shutdown_timeout_ms=%u", sig,
				 m->cfg->shutdown_timeout_ms);
			m->stop = RF_STOP_GRACEFUL;
			request_stop(m->workers, m->n, m->stop);
		} else if (m->stop == RF_STOP_GRACEFUL) {
			log_warn("msg=\"second stop signal, closing every connection now\" signal=%d",
				 sig);
			m->stop = RF_STOP_NOW;
			request_stop(m->workers, m->n, m->stop);
		}
	} else if (sig == SIGUSR1) {
		reopen_logs(m->cfg);
	} else if (sig == SIGHUP && !m->stop) {
		char err[512];

		/* RELOADING=1 then READY=1: `systemctl reload` waits for the
		 * second one. */
		notify_reloading();
		reload_config(err, sizeof(err), NULL);
		notify_ready(m->cfg, m->n);
	}
}

/* The main thread's loop while workers run: signals (read from <sfd>, a
 * signalfd of the blocked set) and worker exits (<efd>, written by each
 * worker as it ends). It keeps taking signals during a graceful stop, so
 * a second TERM or INT closes everything at once, and returns when every
 * worker has ended. A worker that ends on its own (a fatal ring error)
 * stops the whole process, which exits 1: its listener would otherwise
 * stay open with nobody accepting on it. */
static int main_loop(struct main_loop *m, int sfd, int efd)
{
	struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = efd, .events = POLLIN } };
	struct signalfd_siginfo si;
	uint32_t i, exited;
	uint64_t v;

	for (;;) {
		/* once a second at least: the store's compaction */
		if (!m->stop)
			persist_tick();
		if (poll(pfd, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			log_error("msg=\"poll failed in the main thread\" error=\"%s\"",
				  strerror(errno));
			if (!m->stop) {
				m->stop = RF_STOP_GRACEFUL;
				request_stop(m->workers, m->n, m->stop);
			}
			return 1;       /* the caller joins the workers */
		}
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(m, (int)si.ssi_signo);
		if (!(pfd[1].revents & POLLIN))
			continue;
		if (read(efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: drained already; the flags below decide */
		}
		for (i = exited = 0; i < m->n; i++)
			exited += worker_exited(&m->workers[i]);
		if (exited == m->n)
			return m->status;
		if (exited && !m->stop) {
			log_error("msg=\"a worker ended on its own, stopping\" workers_left=%u",
				  m->n - exited);
			m->status = 1;
			m->stop = RF_STOP_GRACEFUL;
			request_stop(m->workers, m->n, m->stop);
		}
	}
}

static int run(struct runtime *rt, const struct privdrop *pd)
{
	const struct rf_config *cfg = rt->cfg;
	uint32_t nworkers = worker_count(cfg), i, j, started = 0;
	struct endpoint eps[RF_MAX_ENDPOINTS];
	unsigned neps = endpoints_collect(cfg, eps);
	struct worker *workers;
	int *fds, ret = 0, status = 1, sfd = -1, efd = -1;
	char err[512];
	sigset_t set;

	/* Workers inherit this mask: only the main thread takes signals. It is
	 * set before the listeners open: a client that sees the port may send
	 * a signal at once (a reload), which then waits for sigwait() below
	 * instead of killing a process still starting. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	workers = aligned_alloc(64, ((sizeof(*workers) * nworkers) + 63) & ~(size_t)63);
	fds = calloc((size_t)nworkers * neps, sizeof(*fds));
	if (!workers || !fds) {
		log_error("msg=\"out of memory at start-up\"");
		return 1;
	}
	/* Workers look at each other (admin views, check assignment) and wake
	 * each other while later ones still start: every slot is prepared
	 * (zeroed, with its wake eventfd) before the first one starts. */
	for (i = 0; i < nworkers; i++) {
		ret = worker_prepare(&workers[i], (int)i);
		if (ret < 0) {
			log_error("msg=\"cannot create a worker's eventfd\" error=\"%s\"",
				  strerror(-ret));
			return 1;
		}
	}
	rf_workers = workers;
	rf_nworkers = nworkers;
	/* one bucket shard per worker */
	ret = rl_init(rt->rl, cfg, nworkers, rl_now_us());
	if (ret < 0) {
		log_error("msg=\"rate limiter set-up failed\" error=\"%s\"", strerror(-ret));
		return 1;
	}
	if (cfg->cluster.enabled && (ret = cluster_create(cfg, rt->rl, nworkers, &rf_cluster)) < 0) {
		log_error("msg=\"cluster set-up failed\" error=\"%s\"", strerror(-ret));
		return 1;
	}
	if (cfg->cache.enabled && (ret = cache_start(cfg, nworkers)) < 0) {
		log_error("msg=\"cache set-up failed\" error=\"%s\"", strerror(-ret));
		return 1;
	}
	/* stored state is in place before the first request can arrive */
	ret = persist_start(rt, pd->change && geteuid() == 0, pd->uid, pd->gid, err, sizeof(err));
	if (ret < 0)
		return store_failed(err, workers, fds, 0);
	reload_services_start(err, sizeof(err));
	for (i = 0; i < nworkers; i++) {
		for (j = 0; j < neps; j++) {
			int fd = i ? endpoint_open(&eps[j], 4096) : endpoint_open_first(&eps[j], 4096);

			if (fd < 0) {
				log_error("msg=\"cannot listen\" address=%s kind=%s error=\"%s\"",
					  eps[j].addr->text, listen_kind_name(eps[j].kind),
					  strerror(-fd));
				return 1;
			}
			fds[i * neps + j] = fd;
		}
	}
	if (drop_privileges(pd, cfg) < 0)
		return 1;
	if (persist_check_writable(err, sizeof(err)) < 0)
		return store_failed(err, workers, fds, (size_t)nworkers * neps);
	/* The signals are blocked since main() began and workers inherit the
	 * mask: they are read here, from a signalfd, by the main thread only.
	 * One that arrived during start-up is pending and read at once. */
	main_signals(&set);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sfd < 0 || efd < 0) {
		log_error("msg=\"cannot create the main thread's signalfd or eventfd\" error=\"%s\"",
			  strerror(errno));
		return 1;
	}
	rf_worker_exit_fd = efd;
	for (i = 0; i < nworkers; i++) {
		ret = worker_start(&workers[i], rt, eps, neps, &fds[i * neps]);
		if (ret < 0)
			break;
		started++;
	}
	if (started == nworkers) {
		struct main_loop m = { .cfg = cfg, .workers = workers, .n = nworkers };

		log_info("msg=\"ringfront started\" version=%s workers=%u io=%s listen=%s config=%s",
			 RF_VERSION, nworkers, io_backend_name(rf_io_backend),
			 cfg->listen[0].text, cfg->path);
		notify_ready(cfg, nworkers);
		status = main_loop(&m, sfd, efd);
	} else {
		char msg[96];

		snprintf(msg, sizeof(msg), "STATUS=worker %u failed to start\nERRNO=%d",
			 started, -ret);
		notify_send(msg);
		request_stop(workers, started, RF_STOP_GRACEFUL);
	}
	for (i = 0; i < started; i++)
		worker_join(&workers[i]);
	rf_worker_exit_fd = -1;
	close(sfd);
	close(efd);
	for (i = 0; i < nworkers; i++)
		worker_release(&workers[i]);
	for (i = started; i < nworkers; i++)
		for (j = 0; j < neps; j++)
			close(fds[i * neps + j]);
	rf_nworkers = 0;
	rf_workers = NULL;
	free(workers);
	free(fds);
	persist_stop();
	if (started != nworkers)
		return 1;
	log_info("msg=\"stopped\"");
	return status;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct rf_config *cfg;
	static struct rl limiter;       /* outlives every runtime */
	struct runtime *rt;
	char err[512];
	int opt, check = 0, ret, afd = -1;
	struct privdrop pd;
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "keys", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((opt = getopt_long(argc, argv, "c:tkvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'k':
			config_dump_keys(stdout);
			return 0;
		case 'v':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ringfront: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	if (!check) {
		sigset_t set;
		int sig;

		/* Block the signals main_loop() reads from the first moment:
		 * one that arrives during start-up waits there and stops the
		 * server gracefully once it runs, instead of killing it half
		 * started (or being lost to an inherited SIG_IGN). */
		main_signals(&set);
		for (sig = 1; sig < NSIG; sig++)
			if (sigismember(&set, sig) == 1)
				signal(sig, SIG_DFL);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* Unknown names are configuration errors; not being root is one only
	 * when it is time to switch. */
	ret = privdrop_prepare(cfg->user, cfg->group, &pd, err, sizeof(err));
	if (ret < 0 && (ret != -EPERM || !check)) {
		fprintf(stderr, "%s: %s\n", path, err);
		config_free(cfg);
		return 1;
	}
	if (check) {
		if (ret < 0)
			fprintf(stderr, "%s: note: %s\n", path, err);
		printf("%s: configuration ok\n", path);
		config_free(cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	rf_log_level = (int)cfg->log_level;
	if (cfg->log_file && (ret = log_open(cfg->log_file)) < 0) {
		fprintf(stderr, "%s: cannot open log_file %s: %s\n", path,
			cfg->log_file, strerror(-ret));
		config_free(cfg);
		return 1;
	}
	if (cfg->access_log) {
		afd = access_log_open(cfg->access_log);
		if (afd < 0) {
			fprintf(stderr, "%s: cannot open access_log %s: %s\n", path,
				cfg->access_log, strerror(-afd));
			config_free(cfg);
			return 1;
		}
	}
	raise_fd_limit(cfg);
	ret = notify_init();
	if (ret < 0)
		log_warn("msg=\"cannot use NOTIFY_SOCKET\" error=\"%s\"", strerror(-ret));
	/* main keeps a reference on the first runtime (run() reads its config
	 * to the end); the published one holds another, which reloads move */
	rt = runtime_new(cfg, &limiter, 1);
	if (!rt) {
		fprintf(stderr, "ringfront: out of memory\n");
		return 1;
	}
	runtime_ref(rt);
	runtime_publish(rt);
	rf_access_log_fd = afd;
	ret = run(rt, &pd);
	runtime_unref(runtime_publish(NULL));
	runtime_unref(rt);
	if (rf_cluster) {
		cluster_destroy(rf_cluster);
		rf_cluster = NULL;
	}
	rl_destroy(&limiter);
	if (rf_cache)
		cache_destroy(rf_cache);
	if (afd >= 0)
		close(afd);
	return ret;
}
