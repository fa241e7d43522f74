#include "config.h"
#include "agent/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct loop_watch {
	struct loop *loop;
	int fd;
	uint32_t events;
	loop_fd_cb cb;
	void *ud;
	bool dead;
	struct loop_watch *next_dead;
};

struct loop_timer {
	struct loop *loop;
	int64_t when;
	size_t idx; /* position in the heap */
	loop_timer_cb cb;
	void *ud;
};

struct deferred {
	loop_defer_cb cb;
	void *ud;
};

struct loop {
	int epfd;
	bool quit;
	struct loop_watch *dead; /* removed during dispatch, freed after it */
	struct loop_timer **heap;
	size_t n_timers, cap_timers;
	struct deferred *defer;
	size_t n_defer, cap_defer;
};

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	*out = l;
	return 0;
}

static void free_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_watch *w = l->dead;
		l->dead = w->next_dead;
		free(w);
	}
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	free_dead(l);
	for (size_t i = 0; i < l->n_timers; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->defer);
	close(l->epfd);
	free(l);
	return NULL;
}

int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud,
		   struct loop_watch **out)
{
	struct loop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };

	if (!w)
		return -ENOMEM;
	*w = (struct loop_watch){ .loop = l, .fd = fd, .events = events, .cb = cb, .ud = ud };
	ev.data.ptr = w;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

int loop_watch_set(struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->events == events)
		return 0;
	if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

uint32_t loop_watch_events(const struct loop_watch *w)
{
	return w->events;
}

struct loop_watch *loop_watch_del(struct loop_watch *w)
{
	if (!w)
		return NULL;
	/* The fd may already be closed by its owner; then the kernel dropped it. */
	epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->dead = true;
	w->next_dead = w->loop->dead;
	w->loop->dead = w;
	return NULL;
}

/* Timer heap, ordered by `when`. */
static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->idx = a;
	l->heap[b]->idx = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->when <= l->heap[i]->when)
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->n_timers && l->heap[c]->when < l->heap[m]->when)
			m = c;
		if (c + 1 < l->n_timers && l->heap[c + 1]->when < l->heap[m]->when)
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

int loop_timer_add(struct loop *l, int64_t when_us, loop_timer_cb cb, void *ud,
		   struct loop_timer **out)
{
	struct loop_timer *t;

	if (l->n_timers == l->cap_timers) {
		size_t cap = l->cap_timers ? l->cap_timers * 2 : 16;
		struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->cap_timers = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct loop_timer){ .loop = l, .when = when_us, .idx = l->n_timers, .cb = cb, .ud = ud };
	l->heap[l->n_timers++] = t;
	heap_up(l, t->idx);
	*out = t;
	return 0;
}

void loop_timer_move(struct loop_timer *t, int64_t when_us)
{
	int64_t old = t->when;

	t->when = when_us;
	if (when_us < old)
		heap_up(t->loop, t->idx);
	else
		heap_down(t->loop, t->idx);
}

struct loop_timer *loop_timer_del(struct loop_timer *t)
{
	struct loop *l;
	size_t i;

	if (!t)
		return NULL;
	l = t->loop;
	i = t->idx;
	l->n_timers--;
	if (i != l->n_timers) {
		l->heap[i] = l->heap[l->n_timers];
		l->heap[i]->idx = i;
		heap_down(l, i);
		heap_up(l, i);
	}
	free(t);
	return NULL;
}

int loop_defer(struct loop *l, loop_defer_cb cb, void *ud)
{
	if (l->n_defer == l->cap_defer) {
		size_t cap = l->cap_defer ? l->cap_defer * 2 : 16;
		struct deferred *d = realloc(l->defer, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		l->defer = d;
		l->cap_defer = cap;
	}
	l->defer[l->n_defer++] = (struct deferred){ cb, ud };
	return 0;
}

static void run_deferred(struct loop *l)
{
	/* Callbacks may defer more; run until none is left. */
	while (l->n_defer > 0) {
		struct deferred d = l->defer[0];
		memmove(l->defer, l->defer + 1, (l->n_defer - 1) * sizeof(*l->defer));
		l->n_defer--;
		d.cb(d.ud);
	}
}

static void run_timers(struct loop *l)
{
	int64_t now = mono_us();

	while (l->n_timers > 0 && l->heap[0]->when <= now) {
		struct loop_timer *t = l->heap[0];
		/* Push it far out first: the callback usually deletes or moves it. */
		loop_timer_move(t, INT64_MAX);
		t->cb(t, t->ud);
	}
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[64];

	l->quit = false;
	while (!l->quit) {
		int timeout = -1, n;

		run_deferred(l);
		if (l->quit)
			break;
		if (l->n_timers > 0) {
			int64_t d = l->heap[0]->when - mono_us();
			timeout = d <= 0 ? 0 : (int)MIN((d + 999) / 1000, 60000);
		}
		n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;
			if (!w->dead)
				w->cb(w, evs[i].events, w->ud);
		}
		free_dead(l);
		run_timers(l);
		free_dead(l);
	}
	return 0;
}

void loop_quit(struct loop *l)
{
	l->quit = true;
}
