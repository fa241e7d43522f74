/* The event loop: timers in order, watches removed while their events are
 * being dispatched, deferred calls. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/loop.h"

struct order {
	struct loop *l;
	int seen[8];
	int n;
	struct loop_timer *other; /* deleted by the first timer */
	int stop_after;
};

static void note(struct order *o, int id)
{
	o->seen[o->n++] = id;
	if (o->n == o->stop_after)
		loop_quit(o->l);
}

static void timer_a(struct loop_timer *t, void *ud) { loop_timer_del(t); note(ud, 1); }
static void timer_b(struct loop_timer *t, void *ud)
{
	struct order *o = ud;
	loop_timer_del(t);
	o->other = loop_timer_del(o->other); /* a timer may cancel another */
	note(o, 2);
}
static void timer_never(struct loop_timer *t, void *ud) { fail_msg("a deleted timer fired"); }
static void timer_c(struct loop_timer *t, void *ud) { loop_timer_del(t); note(ud, 3); }

static void timers_fire_in_order(void **state)
{
	struct loop *l;
	struct loop_timer *t;
	struct order o = { .stop_after = 3 };
	int64_t now = mono_us();

	assert_int_equal(loop_new(&l), 0);
	o.l = l;
	/* Added out of order. */
	assert_int_equal(loop_timer_add(l, now + 30000, timer_c, &o, &t), 0);
	assert_int_equal(loop_timer_add(l, now + 1000, timer_a, &o, &t), 0);
	assert_int_equal(loop_timer_add(l, now + 20000, timer_never, &o, &o.other), 0);
	assert_int_equal(loop_timer_add(l, now + 10000, timer_b, &o, &t), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seen[0], 1);
	assert_int_equal(o.seen[1], 2);
	assert_int_equal(o.seen[2], 3);
	assert_true(mono_us() - now >= 30000);
	loop_free(l);
}

struct pair {
	struct loop *l;
	int fds[2][2];
	struct loop_watch *w[2];
	int calls;
};

/* Whichever runs first removes both watches and closes both pipes: the
 * other's pending event must not be delivered. */
static void on_readable(struct loop_watch *w, uint32_t events, void *ud)
{
	struct pair *p = ud;

	p->calls++;
	for (int i = 0; i < 2; i++) {
		p->w[i] = loop_watch_del(p->w[i]);
		close(p->fds[i][0]);
		close(p->fds[i][1]);
	}
	loop_quit(p->l);
}

static void watch_removed_during_dispatch(void **state)
{
	struct pair p = { 0 };

	assert_int_equal(loop_new(&p.l), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pipe(p.fds[i]), 0);
		assert_int_equal(write(p.fds[i][1], "x", 1), 1);
		assert_int_equal(loop_watch_add(p.l, p.fds[i][0], EPOLLIN, on_readable, &p, &p.w[i]), 0);
	}
	assert_int_equal(loop_run(p.l), 0);
	assert_int_equal(p.calls, 1);
	loop_free(p.l);
}

static void deferred(void *ud)
{
	struct order *o = ud;

	note(o, 7);
	if (o->n == 1)
		assert_int_equal(loop_defer(o->l, deferred, o), 0); /* deferring from a deferred call */
}

static void defer_runs_after_batch(void **state)
{
	struct order o = { .stop_after = 2 };

	assert_int_equal(loop_new(&o.l), 0);
	assert_int_equal(loop_defer(o.l, deferred, &o), 0);
	assert_int_equal(loop_run(o.l), 0);
	assert_int_equal(o.n, 2);
	loop_free(o.l);
}

static void watch_interest_changes(void **state)
{
	struct loop *l;
	struct loop_watch *w;
	int fds[2];

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(loop_watch_add(l, fds[0], EPOLLIN, on_readable, NULL, &w), 0);
	assert_int_equal(loop_watch_events(w), EPOLLIN);
	assert_int_equal(loop_watch_set(w, 0), 0);
	assert_int_equal(loop_watch_events(w), 0);
	/* The same descriptor twice is refused by epoll. */
	struct loop_watch *w2 = NULL;
	assert_int_equal(loop_watch_add(l, fds[0], EPOLLIN, on_readable, NULL, &w2), -EEXIST);
	assert_null(w2);
	loop_watch_del(w);
	close(fds[0]);
	close(fds[1]);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timers_fire_in_order),
		cmocka_unit_test(watch_removed_during_dispatch),
		cmocka_unit_test(defer_runs_after_batch),
		cmocka_unit_test(watch_interest_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
