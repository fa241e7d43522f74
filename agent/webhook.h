/* The approval webhook ([agent] approval_webhook): one worker thread POSTs
 * JSON notices with libcurl so that approvers hear of a request where they
 * already are. It only informs: a slow, failing or absent endpoint never
 * delays or decides anything on the loop. The queue is bounded and a
 * notice that does not fit is dropped (and said so in the log).
 *
 * Each POST: Content-Type application/json, 5 s in all, https only (http
 * for localhost, 127.0.0.1 and [::1]), the system's CA store, no
 * redirects, the response read up to a cap and discarded. Failures are
 * logged with the URL's scheme and host only (the path may hold a token)
 * and never with the body (it may hold SQL). */
#pragma once
#include <stdbool.h>
#include "common/util.h"

#define WEBHOOK_QUEUE_MAX 64

struct webhook;

/* An idle worker waiting for notices. Called with the signals the loop
 * handles blocked, so the thread inherits that mask. */
int webhook_start(struct webhook **out, char *err, size_t errlen) WUR;
/* Queue body for url (both copied); label names the notice in log lines
 * (the approval id). False when dropped: the queue is full or memory ran
 * out (logged here). Never blocks on the network. */
bool webhook_post(struct webhook *w, const char *url, const char *body, const char *label);
/* Stop the worker: queued notices are dropped, a POST in flight is
 * aborted; waits for the thread a bounded time. NULL-safe; returns NULL. */
struct webhook *webhook_stop(struct webhook *w);
