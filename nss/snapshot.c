#include "config.h"
#include "nss/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PW_FIELDS 7
#define GR_FIELDS 4

int snap_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > SNAP_NAME_MAX)
		return 0;
	if (name[len - 1] == '$')
		len--;
	if (len == 0 || !((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return 0;
	for (i = 1; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* A uid or gid as the writer prints it: decimal, no sign, no leading zero.
 * 0 is refused (a root alias published through NSS is never legitimate)
 * and so is (uid_t)-1, which the set*id calls read as "no change". */
static int parse_id(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s[0] < '1' || s[0] > '9')
		return -1;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v >= UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Printable bytes only: a NUL would cut a field short, and control
 * characters have no business in a name, a home or a gecos. */
static int line_printable(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Cuts a NUL-terminated line at ':' into exactly nf fields. */
static int split_fields(char *line, char **f, unsigned nf)
{
	unsigned i = 0;
	char *p;

	f[i++] = line;
	for (p = line; *p; p++) {
		if (*p != ':')
			continue;
		if (i == nf)
			return -1;
		*p = '\0';
		f[i++] = p + 1;
	}
	return i == nf ? 0 : -1;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elsz)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	p = reallocarray(*arr, ncap, elsz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int parse_pw_line(char *line, struct snap_pw *e)
{
	char *f[PW_FIELDS];

	if (split_fields(line, f, PW_FIELDS) < 0)
		return -1;
	if (!snap_name_valid(f[0], strlen(f[0])) || strcmp(f[1], "x") != 0)
		return -1;
	if (parse_id(f[2], &e->uid) < 0 || parse_id(f[3], &e->gid) < 0)
		return -1;
	/* An empty shell means /bin/sh to login programs, an empty home
	 * means "/" to some: both must be absolute paths. */
	if (f[5][0] != '/' || f[6][0] != '/')
		return -1;
	e->name = f[0];
	e->gecos = f[4];
	e->dir = f[5];
	e->shell = f[6];
	return 0;
}

/* A member is a local account name, which the host chose, not sluice:
 * useradd --badname and directories allow more than the contract's names
 * (upper case, '@'), and one such account must not make the group vanish
 * for every other member. Printable ASCII without blanks, at most
 * LOGIN_NAME_MAX - 1 bytes, not starting with '+' or '-' (the NIS markers
 * of the compat syntax). */
static int member_valid(const char *m, size_t len)
{
	size_t i;

	if (len == 0 || len >= SNAP_MEMBER_MAX || m[0] == '+' || m[0] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if (m[i] <= ' ' || m[i] > '~')
			return 0;
	return 1;
}

/* Members: empty, or names separated by single commas. The line cap
 * already bounds them (a 4096-byte line holds at most 2048); the member cap
 * keeps holding if that one is ever raised. */
static int parse_members(char *list, uint32_t *nmem)
{
	uint32_t n = 0;
	char *p = list, *comma;

	if (*p == '\0') {
		*nmem = 0;
		return 0;
	}
	for (;;) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (!member_valid(p, strlen(p)) || n == SNAP_MEMBERS_MAX)
			return -1;
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	*nmem = n;
	return 0;
}

static int parse_gr_line(char *line, struct snap_gr *e)
{
	char *f[GR_FIELDS];

	if (split_fields(line, f, GR_FIELDS) < 0)
		return -1;
	if (!snap_name_valid(f[0], strlen(f[0])) || strcmp(f[1], "x") != 0)
		return -1;
	if (parse_id(f[2], &e->gid) < 0 || parse_members(f[3], &e->nmem) < 0)
		return -1;
	e->name = f[0];
	e->mem = f[3];
	return 0;
}

static int cmp_name_key(const void *a, const void *b)
{
	const struct snap_name_key *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_id_key(const void *a, const void *b)
{
	const struct snap_id_key *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int build_indexes(struct snap *s)
{
	uint32_t i, k;
	size_t m = 0;

	if (s->n == 0)
		return 0;
	s->by_name = calloc(s->n, sizeof(*s->by_name));
	s->by_id = calloc(s->n, sizeof(*s->by_id));
	if (!s->by_name || !s->by_id)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		s->by_name[i].name = s->kind == SNAP_PASSWD ? s->pw[i].name : s->gr[i].name;
		s->by_name[i].idx = i;
		s->by_id[i].id = s->kind == SNAP_PASSWD ? s->pw[i].uid : s->gr[i].gid;
		s->by_id[i].idx = i;
	}
	qsort(s->by_name, s->n, sizeof(*s->by_name), cmp_name_key);
	qsort(s->by_id, s->n, sizeof(*s->by_id), cmp_id_key);
	if (s->kind != SNAP_GROUP)
		return 0;

	for (i = 0; i < s->n; i++)
		s->nmembers += s->gr[i].nmem;
	if (s->nmembers == 0)
		return 0;
	s->members = calloc(s->nmembers, sizeof(*s->members));
	if (!s->members)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		const char *p = s->gr[i].mem;

		for (k = 0; k < s->gr[i].nmem; k++) {
			s->members[m].name = p;
			s->members[m].idx = i;
			m++;
			p += strlen(p) + 1;
		}
	}
	qsort(s->members, s->nmembers, sizeof(*s->members), cmp_name_key);
	return 0;
}

/* One line, '\n' already replaced by NUL: 1 kept, 0 comment or blank,
 * -1 malformed, or -ENOMEM. */
static int parse_line(struct snap *s, char *line, size_t len, size_t *cap)
{
	int r;

	if (len == 0 || line[0] == '#')
		return 0;
	if (len > SNAP_LINE_MAX || !line_printable(line, len))
		return -1;
	if (s->n == UINT32_MAX)
		return -1;
	if (s->kind == SNAP_PASSWD) {
		r = grow((void **)&s->pw, cap, (size_t)s->n + 1, sizeof(*s->pw));
		if (r < 0)
			return r;
		if (parse_pw_line(line, &s->pw[s->n]) < 0)
			return -1;
	} else {
		r = grow((void **)&s->gr, cap, (size_t)s->n + 1, sizeof(*s->gr));
		if (r < 0)
			return r;
		if (parse_gr_line(line, &s->gr[s->n]) < 0)
			return -1;
	}
	s->n++;
	return 1;
}

int snap_parse(struct snap *s, enum snap_kind kind, char *buf, size_t len)
{
	size_t off = 0, cap = 0;
	int r;

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->buf = buf;
	s->len = len;
	if (len > SNAP_FILE_MAX) {
		snap_clear(s);
		return -EFBIG;
	}
	while (off < len) {
		char *line = buf + off;
		char *nl = memchr(line, '\n', len - off);

		/* The writer ends every line with '\n': an unterminated last
		 * line is a cut-off one, and its last field may be short. */
		if (!nl) {
			s->skipped++;
			break;
		}
		*nl = '\0';
		r = parse_line(s, line, (size_t)(nl - line), &cap);
		if (r == -ENOMEM) {
			snap_clear(s);
			return r;
		}
		if (r < 0)
			s->skipped++;
		off = (size_t)(nl - buf) + 1;
	}
	r = build_indexes(s);
	if (r < 0) {
		snap_clear(s);
		return r;
	}
	return 0;
}

void snap_clear(struct snap *s)
{
	enum snap_kind kind = s->kind;

	free(s->buf);
	free(s->pw);
	free(s->gr);
	free(s->by_name);
	free(s->by_id);
	free(s->members);
	memset(s, 0, sizeof(*s));
	s->kind = kind;
}

/* First key whose name is >= name (lower bound). */
static size_t name_lower_bound(const struct snap_name_key *keys, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(keys[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t id_lower_bound(const struct snap_id_key *keys, size_t n, uint32_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (keys[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static long find_name(const struct snap *s, const char *name)
{
	size_t i = name_lower_bound(s->by_name, s->n, name);

	if (i < s->n && strcmp(s->by_name[i].name, name) == 0)
		return (long)s->by_name[i].idx;
	return -1;
}

static long find_id(const struct snap *s, uint32_t id)
{
	size_t i = id_lower_bound(s->by_id, s->n, id);

	if (i < s->n && s->by_id[i].id == id)
		return (long)s->by_id[i].idx;
	return -1;
}

const struct snap_pw *snap_pw_by_name(const struct snap *s, const char *name)
{
	long i = s->kind == SNAP_PASSWD ? find_name(s, name) : -1;

	return i < 0 ? NULL : &s->pw[i];
}

const struct snap_pw *snap_pw_by_uid(const struct snap *s, uint32_t uid)
{
	long i = s->kind == SNAP_PASSWD ? find_id(s, uid) : -1;

	return i < 0 ? NULL : &s->pw[i];
}

const struct snap_gr *snap_gr_by_name(const struct snap *s, const char *name)
{
	long i = s->kind == SNAP_GROUP ? find_name(s, name) : -1;

	return i < 0 ? NULL : &s->gr[i];
}

const struct snap_gr *snap_gr_by_gid(const struct snap *s, uint32_t gid)
{
	long i = s->kind == SNAP_GROUP ? find_id(s, gid) : -1;

	return i < 0 ? NULL : &s->gr[i];
}

size_t snap_groups_of(const struct snap *s, const char *user, size_t *first)
{
	size_t i, n = 0;

	*first = 0;
	if (s->kind != SNAP_GROUP || s->nmembers == 0)
		return 0;
	i = name_lower_bound(s->members, s->nmembers, user);
	*first = i;
	while (i + n < s->nmembers && strcmp(s->members[i + n].name, user) == 0)
		n++;
	return n;
}
