#include "config.h"
#include "agent/verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/list.h"
#include "common/log.h"
#include "common/oidc.h"

struct job {
	struct list_node node;
	struct policy_ref *pol;       /* keeps oidc alive; touched on the loop only */
	const struct pol_oidc *oidc;
	char *token;                  /* wiped after use */
	verify_done_cb done;
	void *ud;
	struct verify_result r;
};

struct verifier {
	struct agent *a;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_node waiting;     /* jobs for the worker */
	struct list_node done;        /* results for the loop */
	unsigned pending;             /* submitted, not yet called back */
	bool stop;
	unsigned refetch_interval;    /* 0 = keep the store's default */
	int efd;
	struct loop_watch *watch;
	struct oidc_store *store;     /* the worker's alone once it runs */
};

static void result_clear(struct verify_result *r)
{
	free(r->subject);
	free(r->issuer);
	for (size_t i = 0; i < r->n_groups; i++)
		free(r->groups[i]);
	free(r->groups);
	memset(r, 0, sizeof(*r));
}

static void job_free(struct job *j)
{
	secret_free_str(j->token);
	result_clear(&j->r);
	policy_ref_put(j->pol);
	free(j);
}

/* Worker side: one job, no locks held. */
static void run_job(struct verifier *v, struct job *j)
{
	const struct pol_oidc *o = j->oidc;
	struct oidc_config cfg = {
		.issuer = o->issuer, .audience = o->audience, .ca_file = o->ca_file,
		.algorithms = (const char *const *)o->algorithms.v, .n_algorithms = o->algorithms.n,
		.leeway = o->leeway, .groups_claim = o->groups_claim,
	};
	struct oidc_identity id = { 0 };
	enum oidc_result res;

	res = oidc_verify(v->store, &cfg, j->token, now_us() / 1000000, &id, j->r.reason,
			  sizeof(j->r.reason));
	secret_free_str(j->token);
	j->token = NULL;
	if (res == OIDC_OK) {
		j->r.status = VERIFY_OK;
		j->r.subject = id.subject;
		j->r.issuer = id.issuer;
		j->r.groups = id.groups;
		j->r.n_groups = id.n_groups;
		j->r.exp_s = id.exp;
		id.subject = id.issuer = NULL;
		id.groups = NULL;
		id.n_groups = 0;
	} else {
		j->r.status = res == OIDC_UNAVAILABLE ? VERIFY_UNAVAILABLE : VERIFY_REJECTED;
		if (!j->r.reason[0])
			snprintf(j->r.reason, sizeof(j->r.reason), "the token does not verify");
	}
	oidc_identity_clear(&id);
}

static void *worker(void *arg)
{
	struct verifier *v = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		struct job *j;

		while (!v->stop && list_empty(&v->waiting))
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->stop)
			break;
		j = container_of(v->waiting.next, struct job, node);
		list_del(&j->node);
		if (v->refetch_interval)
			oidc_store_set_refetch_interval(v->store, v->refetch_interval);
		pthread_mutex_unlock(&v->lock);
		run_job(v, j);
		pthread_mutex_lock(&v->lock);
		list_add_tail(&v->done, &j->node);
		/* An eventfd write cannot fail short of a full counter. */
		if (write(v->efd, &one, sizeof(one)) < 0)
			log_warn("verify: cannot wake the loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Loop side: deliver finished jobs. */
static void on_done(struct loop_watch *w, uint32_t events, void *ud)
{
	struct verifier *v = ud;
	uint64_t n;
	struct list_node done;

	if (read(v->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("verify: eventfd: %s", strerror(errno));
	list_init(&done);
	pthread_mutex_lock(&v->lock);
	while (!list_empty(&v->done)) {
		struct list_node *x = v->done.next;
		list_del(x);
		list_add_tail(&done, x);
	}
	pthread_mutex_unlock(&v->lock);
	while (!list_empty(&done)) {
		struct job *j = container_of(done.next, struct job, node);

		list_del(&j->node);
		v->pending--;
		j->done(v->a, &j->r, j->ud);
		job_free(j);
	}
}

int verifier_start(struct agent *a, const char *cache_dir, struct verifier **out, char *err,
		   size_t errlen)
{
	struct verifier *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return -ENOMEM;
	v->a = a;
	v->efd = -1;
	list_init(&v->waiting);
	list_init(&v->done);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	r = oidc_store_new(cache_dir, &v->store);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the JWKS cache in %s: %s", cache_dir, strerror(-r));
		goto fail;
	}
	v->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->efd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = loop_watch_add(a->loop, v->efd, EPOLLIN, on_done, v, &v->watch);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch the verifier: %s", strerror(-r));
		goto fail;
	}
	r = -pthread_create(&v->thread, NULL, worker, v);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the verifier thread: %s", strerror(-r));
		goto fail;
	}
	v->running = true;
	*out = v;
	return 0;
fail:
	verifier_stop(v);
	return r;
}

struct verifier *verifier_stop(struct verifier *v)
{
	if (!v)
		return NULL;
	if (v->running) {
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->thread, NULL);
	}
	/* Finished jobs are delivered as they are; queued ones are cancelled. */
	on_done(v->watch, EPOLLIN, v);
	while (!list_empty(&v->waiting)) {
		struct job *j = container_of(v->waiting.next, struct job, node);

		list_del(&j->node);
		v->pending--;
		j->r.status = VERIFY_CANCELLED;
		snprintf(j->r.reason, sizeof(j->r.reason), "sluiced is stopping");
		j->done(v->a, &j->r, j->ud);
		job_free(j);
	}
	loop_watch_del(v->watch);
	if (v->efd >= 0)
		close(v->efd);
	oidc_store_free(v->store);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
	return NULL;
}

int verifier_submit(struct verifier *v, struct policy_ref *pol, const struct pol_oidc *oidc,
		    const char *token, verify_done_cb done, void *ud)
{
	struct job *j;

	if (v->pending >= VERIFY_QUEUE_MAX)
		return -EAGAIN;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->token = strdup(token);
	if (!j->token) {
		free(j);
		return -ENOMEM;
	}
	j->pol = policy_ref_get(pol);
	j->oidc = oidc;
	j->done = done;
	j->ud = ud;
	v->pending++;
	pthread_mutex_lock(&v->lock);
	list_add_tail(&v->waiting, &j->node);
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

void verifier_set_refetch_interval(struct verifier *v, unsigned seconds)
{
	pthread_mutex_lock(&v->lock);
	v->refetch_interval = seconds;
	pthread_mutex_unlock(&v->lock);
}
