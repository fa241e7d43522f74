#include "config.h"
#include "policy/value.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

void list_items_free(char **items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		free(items[i]);
	free(items);
}

int list_split(const char *v, size_t max, char ***items, size_t *n)
{
	char **out = NULL;
	size_t cnt = 0;
	int r;

	for (const char *p = v;;) {
		const char *start;
		bool quoted = false;
		char **nv;

		while (is_ws(*p))
			p++;
		if (!*p)
			break;
		start = p;
		for (; *p && (quoted || !is_ws(*p)); p++)
			if (*p == '"')
				quoted = !quoted;
		if (quoted) {
			r = -EINVAL;
			goto fail;
		}
		if (cnt >= max) {
			r = -E2BIG;
			goto fail;
		}
		nv = realloc(out, (cnt + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		out = nv;
		out[cnt] = strndup(start, (size_t)(p - start));
		if (!out[cnt]) {
			r = -ENOMEM;
			goto fail;
		}
		cnt++;
	}
	*items = out;
	*n = cnt;
	return 0;
fail:
	list_items_free(out, cnt);
	return r;
}

bool val_abs_path(const char *v)
{
	size_t len = strlen(v);

	if (v[0] != '/' || len > VALUE_MAX_PATH)
		return false;
	for (const char *p = v; *p;) {
		const char *c;
		size_t cl;

		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		cl = (size_t)(p - c);
		if ((cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < cl; i++)
			if (is_ws(c[i]))
				return false;
	}
	return true;
}

/* RFC 1123 host name; underscores tolerated (container service names). */
static bool is_dns_name(const char *v)
{
	size_t len = strlen(v), label = 0;
	bool last_all_digits = true;

	if (len == 0 || len > 253)
		return false;
	for (const char *p = v;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				break;
			label = 0;
			last_all_digits = true;
			continue;
		}
		if (!is_alpha(*p) && !is_digit(*p) && *p != '-' && *p != '_')
			return false;
		if (label == 0 && *p == '-')
			return false;
		if (!is_digit(*p))
			last_all_digits = false;
		label++;
	}
	/* "999.1.2.3" is neither an address nor a name. */
	return !last_all_digits;
}

int val_host(const char *v, enum host_kind *kind)
{
	unsigned char addr[16];

	if (v[0] == '/') {
		if (!val_abs_path(v))
			return -EINVAL;
		if (strlen(v) > SOCKET_DIR_MAX)
			return -ENAMETOOLONG;
		*kind = HOST_SOCKET_DIR;
		return 0;
	}
	if (inet_pton(AF_INET, v, addr) == 1) {
		*kind = HOST_IPV4;
		return 0;
	}
	if (strchr(v, ':') && inet_pton(AF_INET6, v, addr) == 1) {
		*kind = HOST_IPV6;
		return 0;
	}
	if (is_dns_name(v)) {
		*kind = HOST_NAME;
		return 0;
	}
	return -EINVAL;
}

bool val_unix_name(const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len > UNIX_NAME_MAX || !(is_alpha(v[0]) || v[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = v[i];
		if (c == '$' && i == len - 1)
			break;
		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

bool val_word(const char *v, size_t max)
{
	size_t len = strlen(v);

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

int val_issuer(const char *v, const char **why)
{
	const char *host, *end, *port = NULL;
	bool https;
	char hostbuf[256];
	size_t hlen;

	if (strlen(v) > 1024) {
		*why = "longer than 1024 bytes";
		return -EINVAL;
	}
	if (!val_word(v, 1024)) {
		*why = "contains a blank";
		return -EINVAL;
	}
	if (strncmp(v, "https://", 8) == 0) {
		https = true, host = v + 8;
	} else if (strncmp(v, "http://", 7) == 0) {
		https = false, host = v + 7;
	} else {
		*why = "expected an https:// URL";
		return -EINVAL;
	}
	if (strpbrk(v, "?#")) {
		*why = "an issuer has no query or fragment";
		return -EINVAL;
	}
	end = host + strcspn(host, "/");
	if (memchr(host, '@', (size_t)(end - host))) {
		*why = "an issuer has no user info (\"@\")";
		return -EINVAL;
	}
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));
		if (!rb) {
			*why = "unterminated [IPv6] address";
			return -EINVAL;
		}
		hlen = (size_t)(rb + 1 - host);
		if (rb + 1 < end) {
			if (rb[1] != ':') {
				*why = "unexpected text after ]";
				return -EINVAL;
			}
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));
		hlen = (size_t)((colon ? colon : end) - host);
		if (colon)
			port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(hostbuf)) {
		*why = "expected a host name after the scheme";
		return -EINVAL;
	}
	memcpy(hostbuf, host, hlen);
	hostbuf[hlen] = '\0';
	if (hostbuf[0] == '[') {
		unsigned char addr[16];
		hostbuf[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, hostbuf + 1, addr) != 1) {
			*why = "not a valid [IPv6] address";
			return -EINVAL;
		}
		hostbuf[hlen - 1] = ']';
	} else {
		enum host_kind k;
		if (val_host(hostbuf, &k) < 0 || k == HOST_SOCKET_DIR || k == HOST_IPV6) {
			*why = "not a valid host name";
			return -EINVAL;
		}
	}
	if (port) {
		char pbuf[8];
		size_t pl = (size_t)(end - port);
		uint64_t pn;
		if (pl == 0 || pl >= sizeof(pbuf)) {
			*why = "expected a port number from 1 to 65535 after ':'";
			return -EINVAL;
		}
		memcpy(pbuf, port, pl);
		pbuf[pl] = '\0';
		if (parse_u64(pbuf, 1, 65535, &pn) < 0) {
			*why = "expected a port number from 1 to 65535 after ':'";
			return -EINVAL;
		}
	}
	if (!https && strcmp(hostbuf, "localhost") != 0 && strcmp(hostbuf, "127.0.0.1") != 0 &&
	    strcmp(hostbuf, "[::1]") != 0) {
		*why = "http:// is only allowed for localhost, 127.0.0.1 and [::1] (tests); expected https://";
		return -EINVAL;
	}
	return 0;
}

int val_size(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	static const struct { const char *suffix; unsigned shift; } units[] = {
		{ "", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 }, { "G", 30 }, { "GiB", 30 },
	};
	char digits[21];
	size_t nd = 0;
	uint64_t n;
	int r;

	while (is_digit(v[nd]))
		nd++;
	if (nd == 0 || nd >= sizeof(digits))
		return nd == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, v, nd);
	digits[nd] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(v + nd, units[i].suffix) != 0)
			continue;
		r = parse_u64(digits, 0, UINT64_MAX >> units[i].shift, &n);
		if (r < 0)
			return r;
		n <<= units[i].shift;
		if (n < min || n > max)
			return -ERANGE;
		*out = n;
		return 0;
	}
	return -EINVAL;
}
