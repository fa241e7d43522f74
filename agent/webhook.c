#include "config.h"
#include "agent/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

#define POST_TIMEOUT_MS 5000L
#define RESPONSE_MAX (64 * 1024)  /* read at most this much of an answer, then stop */
#define JOIN_WAIT_S 7             /* at shutdown: a POST in flight is aborted well before */
#define LABEL_MAX 32

struct notice {
	struct notice *next;
	char *url, *body;
	char label[LABEL_MAX];
};

struct webhook {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct notice *head, *tail; /* under mu */
	unsigned n;                 /* under mu */
	bool stop;                  /* under mu */
	atomic_bool abort;          /* read by curl's progress callback */
};

static struct notice *notice_free(struct notice *n)
{
	if (n) {
		free(n->url);
		free(n->body);
		free(n);
	}
	return NULL;
}

static bool is_loopback_host(const char *h)
{
	return strcasecmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 ||
	       strcmp(h, "[::1]") == 0;
}

/* Check url (https, or http to a loopback host) and say where it goes as
 * scheme://host[:port], which is all a log line shows of it. */
static int url_target(const char *url, bool *plain, char *where, size_t n)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int r = -EINVAL;

	snprintf(where, n, "the approval_webhook URL");
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	snprintf(where, n, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
	if (strcasecmp(scheme, "https") == 0) {
		*plain = false;
		r = 0;
	} else if (strcasecmp(scheme, "http") == 0 && is_loopback_host(host)) {
		*plain = true;
		r = 0;
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

struct sink {
	size_t got;
	bool over;
};

/* The answer is not used: count it and stop reading past the cap. */
static size_t sink_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t len = size * nmemb;

	(void)p;
	if (s->got + len > RESPONSE_MAX) {
		s->over = true;
		return 0;
	}
	s->got += len;
	return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct webhook *w = ud;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return atomic_load(&w->abort) ? 1 : 0;
}

static void post(struct webhook *w, const struct notice *n)
{
	char where[300], ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL, *h2;
	struct sink sink = { 0 };
	CURL *c = NULL;
	CURLcode res;
	long code = 0;
	bool plain;

	if (url_target(n->url, &plain, where, sizeof(where)) < 0) {
		log_warn("approval webhook: %s is not an https:// URL (http:// only for localhost); "
			 "notice for approval %s not sent", where, n->label);
		return;
	}
	c = curl_easy_init();
	hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (!c || !h2) {
		log_warn("approval webhook: out of memory; notice for approval %s not sent", n->label);
		goto out;
	}
	hdrs = h2;
	if (curl_easy_setopt(c, CURLOPT_URL, n->url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, plain ? "http" : "https") != CURLE_OK ||
#else
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS, plain ? CURLPROTO_HTTP : CURLPROTO_HTTPS) != CURLE_OK ||
#endif
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, POST_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, n->body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(n->body)) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION) != CURLE_OK) {
		log_warn("approval webhook: cannot set up the request; notice for approval %s not sent",
			 n->label);
		goto out;
	}
	res = curl_easy_perform(c);
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && sink.over)) {
		log_warn("approval webhook: POST to %s for approval %s failed: %s", where, n->label,
			 atomic_load(&w->abort) ? "sluiced is stopping" :
			 ebuf[0] ? ebuf : curl_easy_strerror(res));
	} else if (code < 200 || code > 299) {
		log_warn("approval webhook: %s answered HTTP %ld to the notice for approval %s", where,
			 code, n->label);
	} else {
		log_debug("approval webhook: %s took the notice for approval %s (HTTP %ld)", where,
			  n->label, code);
	}
out:
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
}

static void *worker(void *p)
{
	struct webhook *w = p;

	for (;;) {
		struct notice *n;

		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		n = w->head;
		w->head = n->next;
		if (!w->head)
			w->tail = NULL;
		w->n--;
		pthread_mutex_unlock(&w->mu);
		post(w, n);
		notice_free(n);
	}
	return NULL;
}

int webhook_start(struct webhook **out, char *err, size_t errlen)
{
	struct webhook *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	atomic_init(&w->abort, false);
	if ((r = pthread_mutex_init(&w->mu, NULL)) != 0) {
		free(w);
		snprintf(err, errlen, "cannot set up the approval webhook: %s", strerror(r));
		return -r;
	}
	if ((r = pthread_cond_init(&w->cv, NULL)) != 0) {
		pthread_mutex_destroy(&w->mu);
		free(w);
		snprintf(err, errlen, "cannot set up the approval webhook: %s", strerror(r));
		return -r;
	}
	r = pthread_create(&w->thread, NULL, worker, w);
	if (r != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		snprintf(err, errlen, "cannot start the approval webhook thread: %s", strerror(r));
		return -r;
	}
	*out = w;
	return 0;
}

bool webhook_post(struct webhook *w, const char *url, const char *body, const char *label)
{
	struct notice *n = calloc(1, sizeof(*n));
	bool queued = false;

	if (!n || !(n->url = strdup(url)) || !(n->body = strdup(body))) {
		log_warn("approval webhook: out of memory; notice for approval %s dropped", label);
		notice_free(n);
		return false;
	}
	snprintf(n->label, sizeof(n->label), "%s", label);
	pthread_mutex_lock(&w->mu);
	if (w->n < WEBHOOK_QUEUE_MAX && !w->stop) {
		if (w->tail)
			w->tail->next = n;
		else
			w->head = n;
		w->tail = n;
		w->n++;
		queued = true;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (!queued) {
		log_warn("approval webhook: %u notices already wait (the endpoint is slow or down); "
			 "notice for approval %s dropped", WEBHOOK_QUEUE_MAX, label);
		notice_free(n);
	}
	return queued;
}

struct webhook *webhook_stop(struct webhook *w)
{
	struct notice *n;
	struct timespec deadline;
	unsigned dropped;
	int r;

	if (!w)
		return NULL;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	atomic_store(&w->abort, true);
	dropped = w->n;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (dropped)
		log_info("approval webhook: stopping; %u queued notice(s) not sent", dropped);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += JOIN_WAIT_S;
	r = pthread_timedjoin_np(w->thread, NULL, &deadline);
	if (r != 0) {
		/* It holds w: leave both to the exit rather than free under it. */
		log_warn("approval webhook: the worker did not stop within %ds (%s); leaving it",
			 JOIN_WAIT_S, strerror(r));
		pthread_detach(w->thread);
		return NULL;
	}
	while ((n = w->head)) {
		w->head = n->next;
		notice_free(n);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return NULL;
}
