#include "config.h"
#include "policy/ident.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Parse one identifier at *pp into buf (IDENT_MAX + 1 bytes); leaves *pp
 * after it. */
static int ident_one(const char **pp, char *buf, const char **why)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p == '"') {
		for (p++;; p++) {
			if (*p == '\0') {
				*why = "unterminated quoted identifier; expected a closing \"";
				return -EINVAL;
			}
			if (*p == '"') {
				if (p[1] != '"')
					break;
				p++; /* "" is one quote */
			}
			if (n >= IDENT_MAX) {
				*why = "identifier longer than 63 bytes (PostgreSQL would truncate it)";
				return -EINVAL;
			}
			buf[n++] = *p;
		}
		p++;
		if (n == 0) {
			*why = "zero-length quoted identifier \"\"";
			return -EINVAL;
		}
	} else {
		if (!ident_start((unsigned char)*p)) {
			*why = *p == '\0' || *p == '.' ? "empty identifier; expected a name"
			       : "an unquoted identifier starts with a letter or _; quote it (\"...\") otherwise";
			return -EINVAL;
		}
		for (; ident_cont((unsigned char)*p); p++) {
			if (n >= IDENT_MAX) {
				*why = "identifier longer than 63 bytes (PostgreSQL would truncate it)";
				return -EINVAL;
			}
			buf[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
		}
	}
	buf[n] = '\0';
	*pp = p;
	return 0;
}

int ident_fold(const char *s, char **out, const char **why)
{
	char buf[IDENT_MAX + 1], *dup;
	const char *p = s;
	int r = ident_one(&p, buf, why);

	if (r < 0)
		return r;
	if (*p != '\0') {
		*why = "unexpected character in identifier; quote it (\"...\") to keep it";
		return -EINVAL;
	}
	dup = strdup(buf);
	if (!dup)
		return -ENOMEM;
	*out = dup;
	return 0;
}

int ident_split3(const char *s, char *out[3], const char **why)
{
	char buf[3][IDENT_MAX + 1];
	char *res[3] = { NULL, NULL, NULL };
	const char *p = s;

	for (int i = 0; i < 3; i++) {
		int r = ident_one(&p, buf[i], why);
		if (r < 0)
			return r;
		if (i < 2 && *p != '.') {
			*why = *p == '\0' ? "expected schema.table.column (three names separated by dots)"
			       : "unexpected character in identifier; quote it (\"...\") to keep it";
			return -EINVAL;
		}
		if (i < 2)
			p++;
	}
	if (*p != '\0') {
		*why = *p == '.' ? "expected schema.table.column (three names, not more)"
		       : "unexpected character in identifier; quote it (\"...\") to keep it";
		return -EINVAL;
	}
	for (int i = 0; i < 3; i++) {
		res[i] = strdup(buf[i]);
		if (!res[i]) {
			for (int j = 0; j < i; j++)
				free(res[j]);
			return -ENOMEM;
		}
	}
	memcpy(out, res, sizeof(res));
	return 0;
}
