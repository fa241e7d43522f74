/* The per-issuer key store behind oidc_verify(): discovery and JWKS
 * fetched with libcurl, the memory and disk caches, and when to refetch.
 * See jwks.h and oidc.h for the rules. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/jose.h"
#include "common/jwks.h"

#define CONNECT_TIMEOUT_S 5L
#define TOTAL_TIMEOUT_S 10L
#define URL_MAX 2048
#define JWKS_KEYS_MAX 64
#define DISK_MAX (2 * OIDC_RESPONSE_MAX)
#define ERR_MAX 256

struct issuer_keys {
	char *issuer;
	char *jwks_uri;
	struct jose_key *keys;
	size_t n_keys;
	int64_t fetched_at;   /* 0: no set yet */
	int64_t last_fetch;   /* last fetch attempt by this process; 0: never */
	bool tried_disk;
	char last_error[ERR_MAX];
};

struct oidc_store {
	char *cache_dir;
	unsigned refetch_interval;
	unsigned max_age;
	struct issuer_keys **v;
	size_t n;
	struct oidc_store_stats stats;
};

void oidc_say(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (!buf || n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

/* ---- the store ---------------------------------------------------------- */

static void keys_free(struct jose_key *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jose_key_clear(&k[i]);
	free(k);
}

static void issuer_free(struct issuer_keys *ik)
{
	if (!ik)
		return;
	free(ik->issuer);
	free(ik->jwks_uri);
	keys_free(ik->keys, ik->n_keys);
	free(ik);
}

static int check_cache_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Its files decide which keys are trusted. */
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return -EPERM;
	return 0;
}

int oidc_store_new(const char *cache_dir, struct oidc_store **out)
{
	struct oidc_store *s;
	int r;

	if (!out)
		return -EINVAL;
	if (cache_dir) {
		r = check_cache_dir(cache_dir);
		if (r < 0)
			return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->refetch_interval = OIDC_REFETCH_DEFAULT;
	s->max_age = OIDC_MAX_AGE_DEFAULT;
	if (cache_dir) {
		s->cache_dir = strdup(cache_dir);
		if (!s->cache_dir) {
			free(s);
			return -ENOMEM;
		}
	}
	*out = s;
	return 0;
}

struct oidc_store *oidc_store_free(struct oidc_store *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		issuer_free(s->v[i]);
	free(s->v);
	free(s->cache_dir);
	free(s);
	return NULL;
}

void oidc_store_set_refetch_interval(struct oidc_store *s, unsigned seconds)
{
	if (s)
		s->refetch_interval = seconds;
}

void oidc_store_set_max_age(struct oidc_store *s, unsigned seconds)
{
	if (s)
		s->max_age = seconds;
}

void oidc_store_stats(const struct oidc_store *s, struct oidc_store_stats *out)
{
	if (s && out)
		*out = s->stats;
}

static struct issuer_keys *issuer_find(const struct oidc_store *s, const char *issuer)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i]->issuer, issuer) == 0)
			return s->v[i];
	return NULL;
}

static struct issuer_keys *issuer_get(struct oidc_store *s, const char *issuer)
{
	struct issuer_keys *ik = issuer_find(s, issuer), **v;

	if (ik)
		return ik;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	s->v = v;
	ik = calloc(1, sizeof(*ik));
	if (!ik)
		return NULL;
	ik->issuer = strdup(issuer);
	if (!ik->issuer) {
		free(ik);
		return NULL;
	}
	s->v[s->n++] = ik;
	return ik;
}

int oidc_store_issuer_info(const struct oidc_store *s, const char *issuer, size_t *n_keys,
			   int64_t *fetched_at, char *last_error, size_t last_error_len)
{
	const struct issuer_keys *ik;

	if (!s || !issuer)
		return -EINVAL;
	ik = issuer_find(s, issuer);
	if (!ik)
		return -ENOENT;
	if (n_keys)
		*n_keys = ik->n_keys;
	if (fetched_at)
		*fetched_at = ik->fetched_at;
	oidc_say(last_error, last_error_len, "%s", ik->last_error);
	return 0;
}

/* ---- documents ---------------------------------------------------------- */

static bool is_loopback_host(const char *h)
{
	return strcasecmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 ||
	       strcmp(h, "[::1]") == 0;
}

/* https://, or http:// to a loopback host (tests). *plain says which. */
static int url_check(const char *url, bool *plain, char *err, size_t err_len)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL;
	int r = -EINVAL;

	if (strnlen(url, URL_MAX + 1) > URL_MAX) {
		oidc_say(err, err_len, "URL longer than %d bytes", URL_MAX);
		return -EINVAL;
	}
	u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		oidc_say(err, err_len, "not a valid URL: %s", url);
		goto out;
	}
	if (strcasecmp(scheme, "https") == 0) {
		*plain = false;
		r = 0;
	} else if (strcasecmp(scheme, "http") == 0 && is_loopback_host(host)) {
		*plain = true;
		r = 0;
	} else {
		oidc_say(err, err_len, "%s: only https is allowed (http only for localhost)", url);
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

static json_t *parse_json(const char *text, size_t len, const char *what, char *err, size_t err_len)
{
	json_error_t jerr;
	json_t *j;

	if (len > OIDC_RESPONSE_MAX) {
		oidc_say(err, err_len, "%s larger than %d bytes", what, OIDC_RESPONSE_MAX);
		return NULL;
	}
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		oidc_say(err, err_len, "%s is not JSON (line %d: %s)", what, jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		oidc_say(err, err_len, "%s is not a JSON object", what);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The discovery document's issuer must be ours; returns its jwks_uri. */
static int discovery_jwks_uri(const json_t *doc, const char *issuer, char **jwks_uri, char *err,
			      size_t err_len)
{
	const char *iss = json_string_value(json_object_get(doc, "issuer"));
	const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
	bool plain;
	int r;

	if (!iss || strcmp(iss, issuer) != 0) {
		oidc_say(err, err_len, "discovery document names another issuer");
		return -EINVAL;
	}
	if (!uri) {
		oidc_say(err, err_len, "discovery document has no jwks_uri");
		return -EINVAL;
	}
	r = url_check(uri, &plain, err, err_len);
	if (r < 0)
		return r;
	*jwks_uri = strdup(uri);
	return *jwks_uri ? 0 : -ENOMEM;
}

/* The usable keys of a JWKS (others skipped); at least one is required. */
static int jwks_keys(const json_t *jwks, struct jose_key **out, size_t *n_out, char *err, size_t err_len)
{
	const json_t *arr = json_object_get(jwks, "keys");
	struct jose_key *keys;
	size_t n = 0, total;

	if (!json_is_array(arr)) {
		oidc_say(err, err_len, "JWKS has no keys array");
		return -EINVAL;
	}
	total = MIN(json_array_size(arr), (size_t)JWKS_KEYS_MAX);
	keys = calloc(total ? total : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < total; i++) {
		const char *why = NULL;
		int r = jose_jwk_to_key(json_array_get(arr, i), &keys[n], &why);
		if (r == -ENOMEM) {
			keys_free(keys, n);
			return r;
		}
		if (r == 0)
			n++;
	}
	if (n == 0) {
		free(keys);
		oidc_say(err, err_len, "JWKS has no usable signing key");
		return -ENOKEY;
	}
	*out = keys;
	*n_out = n;
	return 0;
}

static void install(struct issuer_keys *ik, char *jwks_uri, struct jose_key *keys, size_t n,
		    int64_t fetched_at)
{
	free(ik->jwks_uri);
	keys_free(ik->keys, ik->n_keys);
	ik->jwks_uri = jwks_uri;
	ik->keys = keys;
	ik->n_keys = n;
	ik->fetched_at = fetched_at;
}

/* ---- disk cache --------------------------------------------------------- */

static char *disk_path(const struct oidc_store *s, const char *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[33], *p;
	size_t n;

	if (EVP_Digest(issuer, strlen(issuer), md, &mdlen, EVP_sha256(), NULL) != 1)
		return NULL;
	hex_encode(md, 16, hex);
	n = strlen(s->cache_dir) + sizeof("/jwks-.json") + 32;
	p = malloc(n);
	if (p)
		snprintf(p, n, "%s/jwks-%s.json", s->cache_dir, hex);
	return p;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int disk_write(struct oidc_store *s, const char *issuer, const char *jwks_uri,
		      const json_t *jwks, int64_t fetched_at)
{
	char *path = NULL, *tmp = NULL, *text = NULL;
	json_t *o;
	int fd = -1, r = -ENOMEM;
	size_t n;

	if (!s->cache_dir)
		return 0;
	o = json_pack("{s:s, s:s, s:I, s:O}", "issuer", issuer, "jwks_uri", jwks_uri, "fetched_at",
		      (json_int_t)fetched_at, "jwks", (json_t *)jwks);
	if (!o)
		goto out;
	text = json_dumps(o, JSON_COMPACT);
	path = disk_path(s, issuer);
	if (!text || !path)
		goto out;
	n = strlen(path) + sizeof(".XXXXXX");
	tmp = malloc(n);
	if (!tmp)
		goto out;
	snprintf(tmp, n, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		r = -errno;
		free(tmp);
		tmp = NULL;
		goto out;
	}
	r = write_all(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	fd = -1;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
out:
	if (r < 0)
		s->stats.disk_failures++;
	else
		s->stats.disk_writes++;
	json_decref(o);
	free(text);
	free(path);
	free(tmp);
	return r;
}

static int disk_load(struct oidc_store *s, struct issuer_keys *ik)
{
	char *path, *text = NULL, err[ERR_MAX];
	const char *iss, *uri;
	json_t *o = NULL;
	struct stat st;
	struct jose_key *keys = NULL;
	size_t n = 0, len = 0;
	char *jwks_uri = NULL;
	json_int_t fetched_at;
	bool plain;
	int fd, r;

	if (!s->cache_dir)
		return -ENOENT;
	path = disk_path(s, ik->issuer);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return -errno;
	r = -EINVAL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) || st.st_size > DISK_MAX)
		goto out;
	len = (size_t)st.st_size;
	r = -ENOMEM;
	text = malloc(len + 1);
	if (!text)
		goto out;
	for (size_t got = 0; got < len;) {
		ssize_t k = read(fd, text + got, len - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = -EIO;
			goto out;
		}
		got += (size_t)k;
	}
	r = -EINVAL;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	iss = json_string_value(json_object_get(o, "issuer"));
	uri = json_string_value(json_object_get(o, "jwks_uri"));
	if (!iss || strcmp(iss, ik->issuer) != 0 || !uri || url_check(uri, &plain, err, sizeof(err)) < 0 ||
	    !json_is_integer(json_object_get(o, "fetched_at")))
		goto out;
	fetched_at = json_integer_value(json_object_get(o, "fetched_at"));
	if (fetched_at <= 0)
		goto out;
	r = jwks_keys(json_object_get(o, "jwks"), &keys, &n, err, sizeof(err));
	if (r < 0)
		goto out;
	jwks_uri = strdup(uri);
	if (!jwks_uri) {
		keys_free(keys, n);
		r = -ENOMEM;
		goto out;
	}
	install(ik, jwks_uri, keys, n, (int64_t)fetched_at);
	s->stats.disk_loads++;
	r = 0;
out:
	close(fd);
	json_decref(o);
	free(text);
	return r;
}

/* ---- fetching ----------------------------------------------------------- */

struct sink {
	struct buf b;
	bool too_big;
};

static size_t sink_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *k = ud;
	size_t n = size * nmemb;

	if (buf_append(&k->b, p, n) < 0) {
		k->too_big = true;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	return n;
}

static int http_get(const char *url, const char *ca_file, struct buf *out, char *err, size_t err_len)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	struct sink k = { .b = BUF_INIT(OIDC_RESPONSE_MAX) };
	struct curl_slist *hdrs = NULL;
	CURL *c = NULL;
	CURLcode cr;
	long code = 0;
	bool plain;
	int r;

	r = url_check(url, &plain, err, err_len);
	if (r < 0)
		return r;
	r = -ENOMEM;
	c = curl_easy_init();
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!c || !hdrs)
		goto out;
	r = -EIO;
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, plain ? "http" : "https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
#else
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS, plain ? CURLPROTO_HTTP : CURLPROTO_HTTPS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTPS) != CURLE_OK ||
#endif
	    /* A plain-http (loopback) fetch follows no redirect at all. */
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, plain ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L) != CURLE_OK ||
	    (ca_file && curl_easy_setopt(c, CURLOPT_CAINFO, ca_file) != CURLE_OK) ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT, TOTAL_TIMEOUT_S) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    /* A proxy from the environment is used, but never for loopback. */
	    curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)OIDC_RESPONSE_MAX) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION) != CURLE_OK) {
		oidc_say(err, err_len, "%s: cannot set up the request", url);
		goto out;
	}
	cr = curl_easy_perform(c);
	if (k.too_big || cr == CURLE_FILESIZE_EXCEEDED) {
		oidc_say(err, err_len, "%s: response larger than %d bytes", url, OIDC_RESPONSE_MAX);
		r = -EMSGSIZE;
		goto out;
	}
	if (cr != CURLE_OK) {
		oidc_say(err, err_len, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(cr));
		goto out;
	}
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
		oidc_say(err, err_len, "%s: HTTP status %ld", url, code);
		goto out;
	}
	*out = k.b;
	k.b = (struct buf)BUF_INIT(0);
	r = 0;
out:
	buf_release(&k.b, 0);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return r;
}

/* The jwks_uri of a discovery document (text) for ik's issuer. */
static int discovery_from_text(const struct issuer_keys *ik, const char *text, size_t len, char **jwks_uri,
			       char *err, size_t err_len)
{
	json_t *doc = parse_json(text, len, "discovery document", err, err_len);
	int r;

	if (!doc)
		return -EINVAL;
	r = discovery_jwks_uri(doc, ik->issuer, jwks_uri, err, err_len);
	json_decref(doc);
	return r;
}

/* A JWKS (text) from *jwks_uri, checked, into ik and the disk cache; takes
 * *jwks_uri on success. */
static int accept_jwks(struct oidc_store *s, struct issuer_keys *ik, char **jwks_uri, const char *text,
		       size_t len, int64_t fetched_at, char *err, size_t err_len)
{
	json_t *jwks = parse_json(text, len, "JWKS", err, err_len);
	struct jose_key *keys = NULL;
	size_t n = 0;
	int r;

	if (!jwks)
		return -EINVAL;
	r = jwks_keys(jwks, &keys, &n, err, err_len);
	if (r == 0) {
		install(ik, *jwks_uri, keys, n, fetched_at);
		*jwks_uri = NULL;
		(void)disk_write(s, ik->issuer, ik->jwks_uri, jwks, fetched_at);
	}
	json_decref(jwks);
	return r;
}

static char *discovery_url(const char *issuer)
{
	static const char wk[] = "/.well-known/openid-configuration";
	size_t n = strlen(issuer), sz;
	char *p;

	if (n > 0 && issuer[n - 1] == '/')
		n--;
	sz = n + sizeof(wk);
	p = malloc(sz);
	if (p)
		snprintf(p, sz, "%.*s%s", (int)n, issuer, wk);
	return p;
}

/* One discovery + JWKS round; on failure the old set stays and last_error
 * says why. */
static int fetch(struct oidc_store *s, struct issuer_keys *ik, const char *ca_file, int64_t now)
{
	struct buf disc = BUF_INIT(0), jwks = BUF_INIT(0);
	char err[ERR_MAX] = "", *durl, *jwks_uri = NULL;
	int r;

	s->stats.fetches++;
	ik->last_fetch = now;
	durl = discovery_url(ik->issuer);
	if (!durl) {
		r = -ENOMEM;
		oidc_say(err, sizeof(err), "out of memory");
		goto out;
	}
	r = http_get(durl, ca_file, &disc, err, sizeof(err));
	if (r < 0)
		goto out;
	r = discovery_from_text(ik, (const char *)disc.data, disc.len, &jwks_uri, err, sizeof(err));
	if (r < 0)
		goto out;
	r = http_get(jwks_uri, ca_file, &jwks, err, sizeof(err));
	if (r < 0)
		goto out;
	r = accept_jwks(s, ik, &jwks_uri, (const char *)jwks.data, jwks.len, now, err, sizeof(err));
out:
	if (r < 0) {
		s->stats.fetch_failures++;
		oidc_say(ik->last_error, sizeof(ik->last_error), "%s", err[0] ? err : "fetch failed");
	} else {
		ik->last_error[0] = '\0';
	}
	free(jwks_uri);
	free(durl);
	buf_release(&disc, 0);
	buf_release(&jwks, 0);
	return r;
}

static bool may_fetch(const struct oidc_store *s, const struct issuer_keys *ik, int64_t now)
{
	/* A clock that went back does not lock fetching out. */
	return ik->last_fetch == 0 || now < ik->last_fetch ||
	       now - ik->last_fetch >= (int64_t)s->refetch_interval;
}

int oidc_store_seed(struct oidc_store *s, const char *issuer, const char *discovery_json,
		    const char *jwks_json, int64_t fetched_at, char *err, size_t err_len)
{
	struct issuer_keys *ik;
	char *uri = NULL;
	int r;

	if (!s || !issuer || !discovery_json || !jwks_json || fetched_at <= 0) {
		oidc_say(err, err_len, "invalid arguments");
		return -EINVAL;
	}
	ik = issuer_get(s, issuer);
	if (!ik) {
		oidc_say(err, err_len, "out of memory");
		return -ENOMEM;
	}
	r = discovery_from_text(ik, discovery_json, strlen(discovery_json), &uri, err, err_len);
	if (r == 0)
		r = accept_jwks(s, ik, &uri, jwks_json, strlen(jwks_json), fetched_at, err, err_len);
	if (r == 0)
		ik->last_fetch = fetched_at;
	free(uri);
	return r;
}


int oidc_store_keys(struct oidc_store *s, const char *issuer, const char *ca_file, int64_t now,
		    const struct jose_key **keys, size_t *n_keys, char *err, size_t err_len)
{
	struct issuer_keys *ik = issuer_get(s, issuer);

	if (!ik) {
		oidc_say(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if (!ik->fetched_at && !ik->tried_disk) {
		ik->tried_disk = true;
		(void)disk_load(s, ik);
	}
	if (!ik->fetched_at) {
		if (may_fetch(s, ik, now))
			(void)fetch(s, ik, ca_file, now);
		if (!ik->fetched_at) {
			oidc_say(err, err_len, "%s", ik->last_error);
			return -EAGAIN;
		}
	} else if (now - ik->fetched_at > (int64_t)s->max_age && may_fetch(s, ik, now)) {
		(void)fetch(s, ik, ca_file, now); /* on failure the old set stays */
	}
	*keys = ik->keys;
	*n_keys = ik->n_keys;
	return 0;
}

int oidc_store_refetch(struct oidc_store *s, const char *issuer, const char *ca_file, int64_t now,
		       char *err, size_t err_len)
{
	struct issuer_keys *ik = issuer_find(s, issuer);

	if (!ik)
		return -ENOENT;
	if (!may_fetch(s, ik, now))
		return 0;
	if (fetch(s, ik, ca_file, now) < 0) {
		oidc_say(err, err_len, "%s", ik->last_error);
		return -EAGAIN;
	}
	return 1;
}
