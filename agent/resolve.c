#include "config.h"
#include "agent/resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct resolve_req {
	struct gaicb gai;       /* first: the notify thread gets a pointer to it */
	struct addrinfo hints;
	struct resolver *r;
	char *host;
	char port[8];
	resolve_cb cb;
	void *ud;
	bool cancelled;
	bool numeric;           /* answered synchronously, delivered from the loop */
	int numeric_err;
	struct addrinfo *numeric_res;
};

struct resolver {
	struct loop *loop;
	int rfd, wfd;
	struct loop_watch *w;
};

static void req_free(struct resolve_req *q)
{
	if (q->gai.ar_result)
		freeaddrinfo(q->gai.ar_result);
	if (q->numeric_res)
		freeaddrinfo(q->numeric_res);
	free(q->host);
	free(q);
}

static void deliver(struct resolve_req *q)
{
	if (!q->cancelled) {
		int err = q->numeric ? q->numeric_err : gai_error(&q->gai);
		struct addrinfo *res = q->numeric ? q->numeric_res : q->gai.ar_result;

		if (q->numeric)
			q->numeric_res = NULL;
		else
			q->gai.ar_result = NULL;
		q->cb(err, err == 0 ? res : NULL, q->ud);
		if (err != 0 && res)
			freeaddrinfo(res);
	}
	req_free(q);
}

static void on_pipe(struct loop_watch *w, uint32_t events, void *ud)
{
	struct resolver *r = ud;
	struct resolve_req *batch[32];
	ssize_t n = read(r->rfd, batch, sizeof(batch));

	for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(batch[0]); i++)
		deliver(batch[i]);
}

/* Runs in a glibc helper thread: hand the finished request to the loop.
 * A pointer-sized write to a pipe is atomic. */
static void notify(union sigval sv)
{
	struct resolve_req *q = sv.sival_ptr;
	ssize_t n;

	do
		n = write(q->r->wfd, &q, sizeof(q));
	while (n < 0 && errno == EINTR);
}

int resolver_new(struct loop *l, struct resolver **out)
{
	struct resolver *r = calloc(1, sizeof(*r));
	int fds[2], ret;

	if (!r)
		return -ENOMEM;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(r);
		return -errno;
	}
	r->loop = l;
	r->rfd = fds[0];
	r->wfd = fds[1];
	if ((ret = fd_set_nonblock(r->rfd)) < 0 ||
	    (ret = loop_watch_add(l, r->rfd, EPOLLIN, on_pipe, r, &r->w)) < 0) {
		close(fds[0]);
		close(fds[1]);
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

struct resolver *resolver_free(struct resolver *r)
{
	if (!r)
		return NULL;
	/* Lookups still running keep their request; they write to a closed
	 * pipe's other end only if we closed it, so leave the write end open
	 * until exit (this runs once, at shutdown). */
	r->w = loop_watch_del(r->w);
	close(r->rfd);
	free(r);
	return NULL;
}

static void deliver_deferred(void *ud)
{
	deliver(ud);
}

int resolve_start(struct resolver *r, const char *host, uint16_t port, resolve_cb cb, void *ud,
		  struct resolve_req **out)
{
	struct resolve_req *q = calloc(1, sizeof(*q));
	struct gaicb *list[1];
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD };
	int ret;

	if (!q)
		return -ENOMEM;
	q->r = r;
	q->cb = cb;
	q->ud = ud;
	q->host = strdup(host);
	if (!q->host) {
		free(q);
		return -ENOMEM;
	}
	snprintf(q->port, sizeof(q->port), "%u", (unsigned)port);
	q->hints.ai_family = AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM;
	q->hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	/* An address literal needs no lookup. */
	q->numeric_err = getaddrinfo(q->host, q->port, &q->hints, &q->numeric_res);
	if (q->numeric_err == 0) {
		q->numeric = true;
		ret = loop_defer(r->loop, deliver_deferred, q);
		if (ret < 0) {
			req_free(q);
			return ret;
		}
		*out = q;
		return 0;
	}
	q->hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	q->gai.ar_name = q->host;
	q->gai.ar_service = q->port;
	q->gai.ar_request = &q->hints;
	sev.sigev_value.sival_ptr = q;
	sev.sigev_notify_function = notify;
	list[0] = &q->gai;
	ret = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (ret != 0) {
		free(q->host);
		free(q);
		return -EAGAIN;
	}
	*out = q;
	return 0;
}

struct resolve_req *resolve_cancel(struct resolve_req *q)
{
	/* The request is freed when it completes; only the callback is off. */
	if (q)
		q->cancelled = true;
	return NULL;
}
