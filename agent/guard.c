/* Guardrails on the PostgreSQL wire: the classification cache, a text's
 * decision for one grant, prepared names with their decisions, and
 * statement approvals. See guard.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/audit.h"
#include "agent/maskwire.h"
#include "agent/guard.h"
#include "agent/pgconn.h"
#include "common/log.h"

/* --- The classification cache ------------------------------------------------
 *
 * Keyed on the exact bytes of the text: the hash only picks the bucket,
 * a hit compares the whole text. Nothing is normalised (two texts that
 * differ in a literal are two entries): a decision can never apply to text
 * it was not made for. Classification depends on the text alone, so one
 * cache serves every grant and policy; the cheap decision is made per
 * statement against the grant. Least recently used entries go first. */

#define BUCKETS 8192 /* power of two, twice the entries */
/* Texts seen once are remembered by hash only, and cached the second time:
 * a stream of one-off texts (a client that puts its values in the text)
 * neither pays for entries it never uses again nor pushes out the ones
 * that are used. The hash decides nothing but whether to keep a copy. */
#define SEEN 8192

static struct {
	struct guard_class *buckets[BUCKETS];
	uint64_t seen[SEEN];
	struct list_node lru;  /* head->next: least recently used */
	size_t n, key_bytes;
	uint64_t seed;
	bool seeded;
	struct guard_cache_stats st;
} cache = { .lru = LIST_HEAD_INIT(cache.lru) };

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Seeded per process, so chains cannot be lined up from outside. */
static uint64_t text_hash(const char *p, size_t n)
{
	uint64_t h, w;

	if (!cache.seeded) {
		if (random_bytes(&cache.seed, sizeof(cache.seed)) < 0)
			cache.seed = (uint64_t)mono_us() ^ (uint64_t)(uintptr_t)&cache;
		cache.seeded = true;
	}
	h = cache.seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, n);
	return mix64(h ^ w);
}

struct guard_class *guard_class_unref(struct guard_class *g)
{
	if (!g || --g->refs > 0)
		return NULL;
	sql_class_free(&g->c);
	free(g);
	return NULL;
}

static void evict(struct guard_class *g)
{
	struct guard_class **pp = &cache.buckets[g->hash & (BUCKETS - 1)];

	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
	list_del(&g->lru);
	g->cached = false;
	cache.n--;
	cache.key_bytes -= g->len;
	guard_class_unref(g);
}

int guard_classify(const char *text, size_t len, struct guard_class **out)
{
	bool cacheable = len <= GUARD_CACHE_TEXT_MAX;
	uint64_t h = 0;
	struct guard_class *g;
	int64_t t0;
	int r;

	if (cacheable) {
		h = text_hash(text, len);
		/* A miss reads seen[] after the parse; start fetching it now,
		 * alongside the bucket (both are random lines of 64 KiB). */
		__builtin_prefetch(&cache.seen[h & (SEEN - 1)]);
		for (g = cache.buckets[h & (BUCKETS - 1)]; g; g = g->next) {
			if (g->hash != h || g->len != len || memcmp(g->text, text, len) != 0)
				continue;
			list_del(&g->lru);
			list_add_tail(&cache.lru, &g->lru);
			cache.st.hits++;
			g->refs++;
			*out = g;
			return 0;
		}
	}
	g = calloc(1, sizeof(*g) + (cacheable ? len + 1 : 1)); /* room for the key, in case */
	if (!g)
		return -ENOMEM;
	list_init(&g->lru);
	g->refs = 1;
	g->len = (uint32_t)len;
	t0 = mono_us();
	r = sql_classify(text, &g->c);
	cache.st.classify_us += (uint64_t)(mono_us() - t0);
	if (r < 0) {
		sql_class_free(&g->c);
		free(g);
		return r;
	}
	if (cacheable && cache.seen[h & (SEEN - 1)] != h) {
		cache.seen[h & (SEEN - 1)] = h;
		cacheable = false;
		cache.st.misses++;
	} else if (!cacheable) {
		cache.st.uncacheable++;
	}
	if (!cacheable) {
		g->len = 0;
		*out = g;
		return 0;
	}
	cache.seen[h & (SEEN - 1)] = 0;
	cache.st.misses++;
	memcpy(g->text, text, len);
	g->hash = h;
	while (cache.n > 0 &&
	       (cache.n >= GUARD_CACHE_ENTRIES || cache.key_bytes + len > GUARD_CACHE_KEY_BYTES)) {
		evict(container_of(cache.lru.next, struct guard_class, lru));
		cache.st.evictions++;
	}
	g->next = cache.buckets[h & (BUCKETS - 1)];
	cache.buckets[h & (BUCKETS - 1)] = g;
	list_add_tail(&cache.lru, &g->lru);
	g->cached = true;
	g->refs++;
	cache.n++;
	cache.key_bytes += len;
	*out = g;
	return 0;
}

void guard_cache_stats(struct guard_cache_stats *out)
{
	*out = cache.st;
	out->entries = cache.n;
	out->key_bytes = cache.key_bytes;
}

void guard_cache_clear(void)
{
	while (cache.n > 0)
		evict(container_of(cache.lru.next, struct guard_class, lru));
}

/* --- SQL texts and name maps ------------------------------------------------- */

struct sqltext *sqltext_new(const char *p, size_t n)
{
	struct sqltext *s = malloc(sizeof(*s) + n + 1);

	if (!s)
		return NULL;
	s->refs = 1;
	s->len = (uint32_t)n;
	s->decision = SQLT_ALLOWED;
	s->redecide = false;
	s->v = NULL;
	memcpy(s->text, p, n);
	s->text[n] = '\0';
	return s;
}

struct sqltext *sqltext_ref(struct sqltext *s)
{
	if (s)
		s->refs++;
	return s;
}

struct sqltext *sqltext_unref(struct sqltext *s)
{
	if (s && --s->refs == 0) {
		free(s->v);
		free(s);
	}
	return NULL;
}

/* The rule of a plain allow for this grant: what decide says for a
 * statement that only reads, computed once per connection. */
static const char *conn_allow_rule(struct pgconn *c)
{
	static const struct sql_stmt read_only = { .classes = CLASS_BIT(CLASS_READ) };
	struct verdict v;

	if (!c->allow_rule_set) {
		decide_statement(&c->gc.grant->scope, &read_only, NULL, &v);
		if (v.kind == VERDICT_ALLOW)
			snprintf(c->allow_rule, sizeof(c->allow_rule), "%s", v.rule);
		c->allow_rule_set = true;
	}
	return c->allow_rule;
}

const char *guard_allow_rule(struct pgconn *c, const struct verdict *v, char **owned)
{
	const char *rule = conn_allow_rule(c);

	*owned = NULL;
	if (strcmp(rule, v->rule) == 0)
		return rule;
	*owned = strdup(v->rule);
	return *owned;
}

int sqltext_decide(struct pgconn *c, struct sqltext *s, enum sqltext_decision d,
		   const struct verdict *v)
{
	s->decision = (uint8_t)d;
	free(s->v);
	s->v = NULL;
	if (d == SQLT_ALLOWED && (!v || strcmp(conn_allow_rule(c), v->rule) == 0))
		return 0;
	if (!v)
		return -EINVAL;
	s->v = malloc(sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	*s->v = *v;
	return 0;
}

const char *sqltext_rule(const struct pgconn *c, const struct sqltext *s)
{
	if (s && s->v)
		return s->v->rule;
	return c->allow_rule_set && c->allow_rule[0] ? c->allow_rule : NULL;
}

struct name_ent *map_find(struct name_map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, name) == 0)
			return &m->v[i];
	return NULL;
}

int map_set(struct name_map *m, const char *name, struct sqltext *sql, bool server)
{
	struct name_ent *e = map_find(m, name);

	if (!e) {
		if (m->n == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 4;
			struct name_ent *v = realloc(m->v, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			m->v = v;
			m->cap = cap;
		}
		e = &m->v[m->n];
		e->name = strdup(name);
		if (!e->name)
			return -ENOMEM;
		e->sql = NULL;
		m->n++;
	}
	sqltext_unref(e->sql);
	e->sql = sqltext_ref(sql);
	e->server = server;
	return 0;
}

void map_del(struct name_map *m, const char *name)
{
	struct name_ent *e = map_find(m, name);

	if (!e)
		return;
	free(e->name);
	sqltext_unref(e->sql);
	*e = m->v[--m->n];
}

void map_clear(struct name_map *m, bool keep_unnamed)
{
	size_t j = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (keep_unnamed && m->v[i].name[0] == '\0') {
			m->v[j++] = m->v[i];
			continue;
		}
		free(m->v[i].name);
		sqltext_unref(m->v[i].sql);
	}
	m->n = j;
	if (m->n == 0) {
		free(m->v);
		m->v = NULL;
		m->cap = 0;
	}
}

/* --- Decisions ----------------------------------------------------------------- */

/* What EXECUTE of a name nobody saw prepared may do: anything. */
static const struct sql_stmt opaque_stmt = { .classes = CLASS_BIT(CLASS_OPAQUE) };

static const struct sql_stmt *only_statement(const struct sql_class *k)
{
	const struct sql_stmt *found = NULL;

	if (k->error)
		return NULL;
	for (size_t i = 0; i < k->n; i++) {
		if (!guard_stmt_runs(k, i))
			continue;
		if (found)
			return NULL;
		found = &k->v[i];
	}
	return found;
}

/* The prepared body behind EXECUTE (statement i of cls): a PREPARE earlier
 * in the same text, else the connection's prepared statement of that name
 * (its text classified again, from the cache as a rule), else opaque.
 * *hold gets a reference to release. NULL on memory exhaustion. */
static const struct sql_stmt *execute_body(struct pgconn *c, const struct guard_class *cls,
					   size_t i, struct guard_class **hold)
{
	const char *name = cls->c.v[i].name;
	const struct sql_stmt *body;
	struct name_ent *e;

	*hold = NULL;
	if (!name)
		return &opaque_stmt;
	for (size_t j = i; j-- > 0;) {
		const struct sql_stmt *p = &cls->c.v[j];
		if (!p->name && (p->flags & SQLF_DEALLOCATE))
			return &opaque_stmt;
		if (!p->name || strcmp(p->name, name) != 0)
			continue;
		if (p->flags & SQLF_PREPARE)
			return p;
		if (p->flags & SQLF_DEALLOCATE)
			return &opaque_stmt;
	}
	e = map_find(&c->stmts, name);
	if (!e || !e->sql)
		return &opaque_stmt;
	if (guard_classify(e->sql->text, e->sql->len, hold) < 0)
		return NULL;
	body = only_statement(&(*hold)->c);
	/* A body that is itself an EXECUTE hides a second level: opaque. */
	if (!body || (body->flags & SQLF_EXECUTE))
		return &opaque_stmt;
	return body;
}

void guard_decide_unseen(struct pgconn *c, struct verdict *out)
{
	decide_statement(&c->gc.grant->scope, &opaque_stmt, NULL, out);
}

void guard_decision_clear(struct guard_decision *d)
{
	d->cls = guard_class_unref(d->cls);
}

static int classify_start(struct pgconn *c, const char *text, size_t len);

/* The result the worker left for exactly this text, taken; NULL if none. */
static struct guard_class *take_pre(struct pgconn *c, const char *text, size_t len)
{
	struct guard_class *g = NULL;

	if (c->pre && c->pre_len == len && memcmp(c->pre_text, text, len) == 0) {
		g = c->pre;
		c->pre = NULL;
	}
	/* Any other text: the result is stale (not for this message). */
	c->pre = guard_class_unref(c->pre);
	free(c->pre_text);
	c->pre_text = NULL;
	c->pre_len = 0;
	return g;
}

int guard_decide_text(struct pgconn *c, const char *text, size_t len, bool may_hold,
		      struct guard_decision *out)
{
	const struct decide_scope *s = &c->gc.grant->scope;
	const struct sql_class *k;
	bool approve = false;
	struct verdict v;
	int r;

	memset(out, 0, offsetof(struct guard_decision, v));
	out->kind = VERDICT_ALLOW;
	out->at = SIZE_MAX;
	out->cls = take_pre(c, text, len);
	if (!out->cls && may_hold && len >= GUARD_ASYNC_MIN && classify_start(c, text, len) == 0)
		return -EINPROGRESS;
	if (!out->cls && (r = guard_classify(text, len, &out->cls)) < 0)
		return r;
	k = &out->cls->c;
	if (k->error) {
		decide_unparsed(s, k, &out->v);
		out->kind = out->v.kind;
		out->ordinal = 1;
		return 0;
	}
	for (size_t i = 0; i < k->n; i++) {
		const struct sql_stmt *st = &k->v[i];
		const struct sql_stmt *extra = NULL;
		struct guard_class *hold = NULL;

		if (!guard_stmt_runs(k, i))
			continue;
		out->n_run++;
		if (st->flags & SQLF_PREPARE)
			out->n_prepare++;
		if (out->kind == VERDICT_BLOCK)
			continue; /* decided; counting the rest */
		if ((st->flags & SQLF_EXECUTE) && !(extra = execute_body(c, out->cls, i, &hold)))
			return -ENOMEM;
		decide_statement(s, st, extra, &v);
		guard_class_unref(hold);
		pg_mask_verdict(c, text, len, st, &v);
		if (v.kind == VERDICT_BLOCK || (v.kind == VERDICT_APPROVE && !approve)) {
			out->kind = v.kind;
			out->at = i;
			out->ordinal = out->n_run;
			out->v = v;
			approve = approve || v.kind == VERDICT_APPROVE;
		} else if (!approve) {
			out->v = v;
		}
	}
	if (out->n_run == 0) {
		/* Only blanks and comments: nothing runs; allowed like a read. */
		decide_statement(s, &(struct sql_stmt){ .classes = CLASS_BIT(CLASS_READ),
							.flags = SQLF_EMPTY }, NULL, &out->v);
		if (out->v.kind != VERDICT_ALLOW) {
			out->v.kind = VERDICT_ALLOW;
			snprintf(out->v.rule, sizeof(out->v.rule), "%s", conn_allow_rule(c));
		}
	}
	return 0;
}

int guard_sql_prepared(struct pgconn *c, const struct sql_stmt *st, const char *text)
{
	const struct pol_agent *cfg = &c->agent->pol->p->agent;
	struct sqltext *t;
	struct verdict v;
	size_t off = st->off, len = st->len;
	int r;

	if (st->flags & SQLF_DEALLOCATE) {
		if (st->name)
			map_del(&c->stmts, st->name);
		else
			map_clear(&c->stmts, true);
		return 0;
	}
	if (!(st->flags & SQLF_PREPARE) || !st->name)
		return 0;
	if (!map_find(&c->stmts, st->name) && c->stmts.n >= cfg->max_prepared_statements)
		return -ENOSPC; /* refused before it ran, unless pipelined past the limit */
	if (len == 0)
		len = strlen(text + off);
	/* The PREPARE statement alone: EXECUTE classifies it again for its body. */
	t = sqltext_new(text + off, len);
	if (!t)
		return -ENOMEM;
	decide_statement(&c->gc.grant->scope, st, NULL, &v);
	r = sqltext_decide(c, t, v.kind == VERDICT_ALLOW ? SQLT_ALLOWED :
			   v.kind == VERDICT_APPROVE ? SQLT_APPROVE : SQLT_BLOCKED, &v);
	if (r == 0)
		r = map_set(&c->stmts, st->name, t, true);
	sqltext_unref(t);
	return r;
}

int guard_sql_prepared_text(struct pgconn *c, const struct sqltext *s)
{
	struct guard_class *k;
	const struct sql_stmt *st;
	int r = guard_classify(s->text, s->len, &k);

	if (r < 0)
		return r;
	st = only_statement(&k->c);
	r = st ? guard_sql_prepared(c, st, s->text) : 0;
	guard_class_unref(k);
	return r;
}

/* --- Approvals ---------------------------------------------------------------- */

static void on_decided(void *ud, enum approval_state st)
{
	struct pgconn *c = ud;

	/* The waiter is freed by approval.c after this returns. */
	c->hold = NULL;
	c->hold_done = true;
	c->hold_state = st;
	/* The held message is examined again (and may close the connection). */
	pg_pump(c, 0, 0);
}

void guard_hold_cancel(struct pgconn *c)
{
	if (c->hold)
		approval_waiter_cancel(c->hold);
	c->hold = NULL;
	c->hold_done = false;
}

/* A refusal: the verdict's own message, then what became of the approval. */
static void refusal(struct guard_refusal *ref, const char *decision, const struct verdict *v,
		    const char *tail)
{
	char head[400];

	ref->decision = decision;
	snprintf(ref->rule, sizeof(ref->rule), "%s", v->rule);
	verdict_message(v, head, sizeof(head));
	snprintf(ref->msg, sizeof(ref->msg), "%s; %s", head, tail);
}

int guard_approval(struct pgconn *c, const char *sql, size_t len, const struct verdict *v,
		   char **rule_owned, struct guard_refusal *ref)
{
	struct grant *g = c->gc.grant;
	struct approval *ap = NULL;
	struct agent_err err = { 0 };
	bool rerun = c->hold_done;
	enum approval_state st = c->hold_state;
	uint64_t wait = g->access->approval_wait;
	char tail[300];
	int r;

	*rule_owned = NULL;
	c->hold_done = false;
	if (rerun && st != APPR_APPROVED) {
		/* Held, then decided otherwise (or not in time): refused. */
		if (st == APPR_PENDING) {
			snprintf(tail, sizeof(tail),
				 "approval %s is still pending after approval_wait (%llus) — an approver runs: sluicectl approve %s",
				 c->hold_id, (unsigned long long)wait, c->hold_id);
			refusal(ref, AUDIT_APPROVAL, v, tail);
		} else {
			snprintf(tail, sizeof(tail), "approval %s was %s", c->hold_id,
				 approval_state_name(st));
			refusal(ref, AUDIT_BLOCKED, v, tail);
		}
		return GA_REFUSED;
	}
	r = approval_for_statement(c->agent, g, sql, len, v, &ap, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(tail, sizeof(tail), "no approval could be requested: %.240s", err.msg);
		refusal(ref, AUDIT_REFUSED, v, tail);
		return GA_REFUSED;
	}
	if (r == APPROVAL_RUN) {
		if (asprintf(rule_owned, "approval %s by %s", ap ? ap->id : "?",
			     ap && ap->decided_by ? ap->decided_by : "?") < 0) {
			*rule_owned = NULL;
			return -ENOMEM;
		}
		return GA_RUN;
	}
	if (!ap)
		return -EINVAL;
	snprintf(c->hold_id, sizeof(c->hold_id), "%s", ap->id);
	if (!rerun && wait > 0) {
		c->hold = approval_wait(c->agent, ap, (int64_t)wait * 1000000, on_decided, c);
		if (c->hold)
			return GA_HOLD;
		log_warn("grant %s connection %llu: cannot wait for approval %s; refusing at once",
			 g->id, (unsigned long long)c->serial, ap->id);
	}
	snprintf(tail, sizeof(tail), "approval %s is pending — an approver runs: sluicectl approve %s",
		 ap->id, ap->id);
	refusal(ref, AUDIT_APPROVAL, v, tail);
	return GA_REFUSED;
}

/* --- Classification off the loop ----------------------------------------------- */

struct guard_job {
	struct guard_job *next;
	struct pgconn *c;          /* NULL once the connection went (loop thread only) */
	struct guard_class *result;
	size_t len;
	char text[];
};

static struct {
	bool running;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct guard_job *waiting, **waiting_tail, *done;
	unsigned queued;           /* waiting + running + done, not yet collected */
	bool stop;
	int efd;
	struct loop_watch *watch;
} worker = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1 };

static void *worker_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&worker.mu);
	for (;;) {
		struct guard_job *j;
		struct guard_class *g;
		uint64_t one = 1;

		while (!worker.stop && !worker.waiting)
			pthread_cond_wait(&worker.cv, &worker.mu);
		if (worker.stop)
			break;
		j = worker.waiting;
		worker.waiting = j->next;
		if (!worker.waiting)
			worker.waiting_tail = &worker.waiting;
		pthread_mutex_unlock(&worker.mu);
		/* Uncached, like any text this long (guard_classify's rule). */
		g = calloc(1, sizeof(*g) + 1);
		if (g) {
			list_init(&g->lru);
			g->refs = 1;
			if (sql_classify(j->text, &g->c) < 0)
				g = guard_class_unref(g);
		}
		j->result = g; /* NULL: out of memory; the loop classifies in place */
		pthread_mutex_lock(&worker.mu);
		j->next = worker.done;
		worker.done = j;
		/* An eventfd write fails only on a full counter, which still wakes the loop. */
		if (write(worker.efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn("guard: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&worker.mu);
	return NULL;
}

static void job_free(struct guard_job *j)
{
	guard_class_unref(j->result);
	free(j);
}

/* The loop's side: hand each result to its connection and pump it. */
static void on_jobs_done(struct loop_watch *w, uint32_t events, void *ud)
{
	struct guard_job *done;
	uint64_t n;

	(void)w, (void)events, (void)ud;
	if (read(worker.efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("guard: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&worker.mu);
	done = worker.done;
	worker.done = NULL;
	pthread_mutex_unlock(&worker.mu);
	while (done) {
		struct guard_job *j = done;
		struct pgconn *c = j->c;

		done = j->next;
		worker.queued--;
		if (!c) {
			job_free(j);
			continue;
		}
		c->job = NULL;
		c->pre = guard_class_unref(c->pre);
		free(c->pre_text);
		c->pre_text = NULL;
		if (j->result) {
			/* The text moves to the connection; the job's copy is the key. */
			c->pre_text = malloc(j->len);
			if (c->pre_text) {
				memcpy(c->pre_text, j->text, j->len);
				c->pre_len = j->len;
				c->pre = j->result;
				j->result = NULL;
			}
		}
		job_free(j);
		/* The held message is examined again (and may close the connection). */
		pg_pump(c, 0, 0);
	}
}

static int classify_start(struct pgconn *c, const char *text, size_t len)
{
	struct guard_job *j;

	if (!worker.running || c->job || worker.queued >= GUARD_ASYNC_QUEUE)
		return -EAGAIN;
	j = malloc(sizeof(*j) + len + 1);
	if (!j)
		return -ENOMEM;
	j->next = NULL;
	j->c = c;
	j->result = NULL;
	j->len = len;
	memcpy(j->text, text, len);
	j->text[len] = '\0';
	pthread_mutex_lock(&worker.mu);
	*worker.waiting_tail = j;
	worker.waiting_tail = &j->next;
	pthread_cond_signal(&worker.cv);
	pthread_mutex_unlock(&worker.mu);
	worker.queued++;
	c->job = j;
	return 0;
}

void guard_classify_cancel(struct pgconn *c)
{
	if (c->job) {
		struct guard_job **pp;
		bool unqueued = false;

		pthread_mutex_lock(&worker.mu);
		for (pp = &worker.waiting; *pp; pp = &(*pp)->next) {
			if (*pp == c->job) {
				*pp = c->job->next;
				if (!worker.waiting)
					worker.waiting_tail = &worker.waiting;
				else if (worker.waiting_tail == &c->job->next)
					worker.waiting_tail = pp;
				unqueued = true;
				break;
			}
		}
		/* Running or done: the loop frees it when it collects it. */
		c->job->c = NULL;
		pthread_mutex_unlock(&worker.mu);
		if (unqueued) {
			worker.queued--;
			job_free(c->job);
		}
		c->job = NULL;
	}
	c->pre = guard_class_unref(c->pre);
	free(c->pre_text);
	c->pre_text = NULL;
	c->pre_len = 0;
}

int guard_worker_start(struct loop *l, char *err, size_t errlen)
{
	int r;

	worker.waiting = NULL;
	worker.waiting_tail = &worker.waiting;
	worker.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (worker.efd < 0) {
		snprintf(err, errlen, "classification worker: eventfd: %s", strerror(errno));
		return -errno;
	}
	r = loop_watch_add(l, worker.efd, EPOLLIN, on_jobs_done, NULL, &worker.watch);
	if (r == 0)
		r = -pthread_create(&worker.thread, NULL, worker_main, NULL);
	if (r < 0) {
		snprintf(err, errlen, "classification worker: %s", strerror(-r));
		worker.watch = loop_watch_del(worker.watch);
		close(worker.efd);
		worker.efd = -1;
		return r;
	}
	worker.running = true;
	return 0;
}

void guard_worker_stop(void)
{
	struct guard_job *j;

	if (!worker.running)
		return;
	pthread_mutex_lock(&worker.mu);
	worker.stop = true;
	pthread_cond_signal(&worker.cv);
	pthread_mutex_unlock(&worker.mu);
	pthread_join(worker.thread, NULL);
	worker.running = false;
	/* Connections are gone by now; free what nobody will collect. */
	while ((j = worker.waiting)) {
		worker.waiting = j->next;
		job_free(j);
	}
	while ((j = worker.done)) {
		worker.done = j->next;
		job_free(j);
	}
	worker.waiting_tail = &worker.waiting;
	worker.queued = 0;
	worker.watch = loop_watch_del(worker.watch);
	close(worker.efd);
	worker.efd = -1;
	guard_cache_clear();
}
