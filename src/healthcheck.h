/* healthcheck.h - active health checks as ordinary I/O on the workers'
 * rings. Each server with a health_path is checked by exactly one worker
 * (server id modulo the worker count), so checks spread over the workers
 * and a server is never checked twice per interval. */
#ifndef RF_HEALTHCHECK_H
#define RF_HEALTHCHECK_H

#include <stdint.h>

struct worker;
struct io_uring_cqe;

/* Set up the checks this worker owns and schedule their first run.
 * Returns 0 or -ENOMEM. */
int hcheck_init(struct worker *w, uint32_t nworkers);

/* A CQE whose user_data names a check. */
void hcheck_on_cqe(void *hc, struct io_uring_cqe *cqe);

/* Graceful stop: no new checks; running ones are cancelled. */
void hcheck_stop(struct worker *w);

/* Checks with I/O still in flight (the worker waits for them to end). */
uint32_t hcheck_inflight(const struct worker *w);

/* A reload: stop this worker's checks and keep them, with a reference on
 * their runtime (counted in the worker's use of it), until their last CQE;
 * hcheck_reap() frees finished sets once per loop iteration. */
void hcheck_retire(struct worker *w);
void hcheck_reap(struct worker *w);

void hcheck_free(struct worker *w);

#endif
