/* uring_probe.c - `ringfront -v`: find out at run time which io_uring
 * features this kernel has. Setup flags are tried on a throw-away ring,
 * opcodes come from IORING_REGISTER_PROBE, and the two multishot modes
 * (which share their opcode with the one-shot form, so the opcode probe
 * cannot see them) are exercised on real loopback sockets. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "bufring.h"
#include "common.h"
#include "uring_probe.h"

/* Feature bits newer than the liburing 2.3 headers we build against. */
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING    (1U << 13)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT     (1U << 15)
#endif
#ifndef IORING_FEAT_RW_ATTR
#define IORING_FEAT_RW_ATTR         (1U << 16)
#endif
#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT       (1U << 17)
#endif

struct bit_name {
	unsigned bit;
	const char *name;
};

static const struct bit_name feat_names[] = {
	{ IORING_FEAT_SINGLE_MMAP, "single_mmap" },
	{ IORING_FEAT_NODROP, "nodrop" },
	{ IORING_FEAT_SUBMIT_STABLE, "submit_stable" },
	{ IORING_FEAT_RW_CUR_POS, "rw_cur_pos" },
	{ IORING_FEAT_CUR_PERSONALITY, "cur_personality" },
	{ IORING_FEAT_FAST_POLL, "fast_poll" },
	{ IORING_FEAT_POLL_32BITS, "poll_32bits" },
	{ IORING_FEAT_SQPOLL_NONFIXED, "sqpoll_nonfixed" },
	{ IORING_FEAT_EXT_ARG, "ext_arg" },
	{ IORING_FEAT_NATIVE_WORKERS, "native_workers" },
	{ IORING_FEAT_RSRC_TAGS, "rsrc_tags" },
	{ IORING_FEAT_CQE_SKIP, "cqe_skip" },
	{ IORING_FEAT_LINKED_FILE, "linked_file" },
	{ IORING_FEAT_REG_REG_RING, "reg_reg_ring" },
	{ IORING_FEAT_RECVSEND_BUNDLE, "recvsend_bundle" },
	{ IORING_FEAT_MIN_TIMEOUT, "min_timeout" },
	{ IORING_FEAT_RW_ATTR, "rw_attr" },
	{ IORING_FEAT_NO_IOWAIT, "no_iowait" },
};

/* Setup flags the workers ask for, in the order they fall back. */
static const struct bit_name setup_names[] = {
	{ IORING_SETUP_SINGLE_ISSUER, "single_issuer" },
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer_taskrun" },
	{ IORING_SETUP_COOP_TASKRUN, "coop_taskrun" },
	{ IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "taskrun_flag" },
	{ IORING_SETUP_SUBMIT_ALL, "submit_all" },
};

/* Opcodes ringfront uses or may use; "no" ones are printed as missing. */
static const struct bit_name op_names[] = {
	{ IORING_OP_ACCEPT, "accept" },
	{ IORING_OP_CONNECT, "connect" },
	{ IORING_OP_RECV, "recv" },
	{ IORING_OP_SEND, "send" },
	{ IORING_OP_SENDMSG, "sendmsg" },
	{ IORING_OP_SEND_ZC, "send_zc" },
	{ IORING_OP_SENDMSG_ZC, "sendmsg_zc" },
	{ IORING_OP_READ, "read" },
	{ IORING_OP_WRITE, "write" },
	{ IORING_OP_CLOSE, "close" },
	{ IORING_OP_SHUTDOWN, "shutdown" },
	{ IORING_OP_ASYNC_CANCEL, "async_cancel" },
	{ IORING_OP_TIMEOUT, "timeout" },
	{ IORING_OP_LINK_TIMEOUT, "link_timeout" },
	{ IORING_OP_MSG_RING, "msg_ring" },
	{ IORING_OP_SOCKET, "socket" },
	{ IORING_OP_SPLICE, "splice" },
};

static int ring_with_flags(unsigned flags, unsigned *features)
{
	struct io_uring_params p;
	struct io_uring ring;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = flags;
	ret = io_uring_queue_init_params(4, &ring, &p);
	if (ret < 0)
		return ret;
	if (features)
		*features = p.features;
	io_uring_queue_exit(&ring);
	return 0;
}

/* Wait up to a second for the one CQE a probe expects. Returns 1 when the
 * operation answered as a multishot one (a result and IORING_CQE_F_MORE),
 * 0 when the kernel refused the mode (-EINVAL), or -errno. */
static int multishot_answer(struct io_uring *ring, int res_is_fd)
{
	struct __kernel_timespec ts = { .tv_sec = 1 };
	struct io_uring_cqe *cqe;
	int ret;

	io_uring_submit(ring);
	ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (ret < 0)
		return ret;
	if (cqe->res >= 0) {
		ret = (cqe->flags & IORING_CQE_F_MORE) ? 1 : 0;
		if (res_is_fd)
			close(cqe->res);
	} else
		ret = cqe->res == -EINVAL ? 0 : cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

/* Multishot accept (5.19): a connection is already queued on a loopback
 * listener, so the first accept completes at once. */
static int probe_multishot_accept(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct io_uring ring;
	int lfd, cfd = -1, ret;

	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0)
		return ret;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, len) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0 ||
	    (cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(cfd, (struct sockaddr *)&sa, len) < 0) {
		ret = -errno;
		goto out;
	}
	io_uring_prep_multishot_accept(io_uring_get_sqe(&ring), lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = multishot_answer(&ring, 1);
out:
	io_uring_queue_exit(&ring);     /* cancels the armed accept */
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return ret;
}

/* Provided-buffer rings (5.19) and multishot recv into them (6.0): one
 * byte waits in a socket pair. Sets *bufring to 1, 0 or -errno. */
static int probe_multishot_recv(int *bufring)
{
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct bufring b;
	int sv[2] = { -1, -1 }, ret;

	*bufring = ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0)
		return ret;
	ret = bufring_init(&b, &ring, 8, 512, 0);
	*bufring = ret == 0 ? 1 : ret == -EINVAL ? 0 : ret;
	if (ret < 0) {
		io_uring_queue_exit(&ring);
		return 0;               /* ringfront only receives into buffer rings */
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    write(sv[1], "x", 1) != 1) {
		ret = -errno;
		goto out;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	ret = multishot_answer(&ring, 0);
out:
	bufring_destroy(&b, &ring);     /* the armed recv then ends with -ENOBUFS */
	io_uring_queue_exit(&ring);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return ret;
}

/* Registrations the workers may use: ring fd (5.18), sparse files (5.19). */
static void probe_register(FILE *out)
{
	struct io_uring ring;
	int fd_ret, sparse_ret;

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return;
	fd_ret = io_uring_register_ring_fd(&ring);
	sparse_ret = io_uring_register_files_sparse(&ring, 16);
	io_uring_queue_exit(&ring);
	fprintf(out, "  registered ring fd: %s\n", fd_ret == 1 ? "yes" : "no");
	fprintf(out, "  sparse fixed files: %s\n", sparse_ret == 0 ? "yes" : "no");
}

static const char *yes_no(int r)
{
	static _Thread_local char buf[64];

	if (r > 0)
		return "yes";
	if (r == 0)
		return "no";
	snprintf(buf, sizeof(buf), "unknown (%s)", strerror(-r));
	return buf;
}

int uring_probe_usable(void)
{
	return ring_with_flags(0, NULL);
}

int uring_probe_print(FILE *out)
{
	struct io_uring_probe *probe;
	unsigned features = 0, known = 0;
	struct utsname un;
	int ret, bufring;
	size_t i;

	if (uname(&un) == 0)
		fprintf(out, "kernel: %s %s %s\n", un.sysname, un.release, un.machine);
	ret = ring_with_flags(0, &features);
	if (ret < 0) {
		fprintf(out, "io_uring: not available (%s)%s\n", strerror(-ret),
			ret == -EPERM ? "; see /proc/sys/kernel/io_uring_disabled" : "");
		return ret;
	}
	fprintf(out, "io_uring: available\n  setup flags:");
	for (i = 0; i < ARRAY_SIZE(setup_names); i++)
		fprintf(out, " %s=%s", setup_names[i].name,
			ring_with_flags(setup_names[i].bit, NULL) == 0 ? "yes" : "no");
	fprintf(out, "\n  features:");
	for (i = 0; i < ARRAY_SIZE(feat_names); i++) {
		known |= feat_names[i].bit;
		if (features & feat_names[i].bit)
			fprintf(out, " %s", feat_names[i].name);
	}
	if (features & ~known)
		fprintf(out, " (unnamed bits %#x)", features & ~known);
	fprintf(out, "\n  multishot accept: %s\n", yes_no(probe_multishot_accept()));
	ret = probe_multishot_recv(&bufring);
	fprintf(out, "  multishot recv: %s\n", yes_no(ret));
	fprintf(out, "  provided buffer rings: %s\n", yes_no(bufring));
	probe_register(out);
	probe = io_uring_get_probe();
	if (probe) {
		fprintf(out, "  opcodes: %u known to the kernel, of those ringfront may use:",
			(unsigned)probe->last_op + 1);
		for (i = 0; i < ARRAY_SIZE(op_names); i++)
			if (io_uring_opcode_supported(probe, (int)op_names[i].bit))
				fprintf(out, " %s", op_names[i].name);
		fprintf(out, "\n  opcodes missing:");
		for (i = 0, ret = 0; i < ARRAY_SIZE(op_names); i++)
			if (!io_uring_opcode_supported(probe, (int)op_names[i].bit))
				ret = fprintf(out, " %s", op_names[i].name);
		fprintf(out, "%s\n", ret ? "" : " none");
		io_uring_free_probe(probe);
	}
	return 0;
}
