/* The agent's one event loop: epoll for descriptors, a binary heap of
 * timers on the monotonic clock, and deferred calls that run after the
 * current batch of events. Everything on the data path runs here; nothing
 * here blocks except epoll_wait. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include "common/util.h"

struct loop;
struct loop_watch;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop_watch *w, uint32_t events, void *ud);
typedef void (*loop_timer_cb)(struct loop_timer *t, void *ud);
typedef void (*loop_defer_cb)(void *ud);

int loop_new(struct loop **out) WUR;
struct loop *loop_free(struct loop *l);

/* Watch fd for events (EPOLLIN/EPOLLOUT; level-triggered). The watch does
 * not own fd. A watch removed while its events are being dispatched is
 * freed after the batch, so callbacks may remove any watch. */
int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud,
		   struct loop_watch **out) WUR;
/* Change the interest set (no syscall when unchanged). */
int loop_watch_set(struct loop_watch *w, uint32_t events) WUR;
uint32_t loop_watch_events(const struct loop_watch *w);
/* NULL-safe; returns NULL. */
struct loop_watch *loop_watch_del(struct loop_watch *w);

/* A one-shot timer at an absolute mono_us() time. */
int loop_timer_add(struct loop *l, int64_t when_us, loop_timer_cb cb, void *ud,
		   struct loop_timer **out) WUR;
void loop_timer_move(struct loop_timer *t, int64_t when_us);
/* NULL-safe; returns NULL. Safe from inside the timer's own callback. */
struct loop_timer *loop_timer_del(struct loop_timer *t);

/* Run cb(ud) once after the current batch of events. */
int loop_defer(struct loop *l, loop_defer_cb cb, void *ud) WUR;

/* Run until loop_quit(); returns 0 or a negative errno from epoll. */
int loop_run(struct loop *l) WUR;
void loop_quit(struct loop *l);
