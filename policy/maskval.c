/* Masking one value and finding sensitive values in text: maskval.h says
 * what each method and detector does; this file says how, and why where it
 * is not obvious. Everything here is bounded: outputs by MASK_OUT_MAX,
 * detector scans by MASK_DETECT_SCAN_MAX and by the longest thing they
 * look for, so no input makes a scan quadratic. */
#include "config.h"
#include "policy/maskval.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define HASH_HEX 32         /* hex digits of the HMAC shown: 128 bits */
#define DOMAIN_MAX 253      /* a DNS name's longest text form */
#define CARD_MIN 13
#define CARD_MAX 19
#define IBAN_MIN 15         /* 2 letters + 2 digits + 11 */
#define IBAN_MAX 34         /* 2 letters + 2 digits + 30 */

bool mask_type_is_text(uint32_t typoid)
{
	switch (typoid) {
	case MASK_OID_TEXT:
	case MASK_OID_VARCHAR:
	case MASK_OID_BPCHAR:
	case MASK_OID_NAME:
	case MASK_OID_UNKNOWN:
		return true;
	default:
		return false;
	}
}

/* ---- output ---- */

void mask_out_free(struct mask_out *o)
{
	if (!o)
		return;
	free(o->buf);
	o->buf = NULL;
	o->len = 0;
}

/* A value being written into out->buf; over: it would pass the cap. */
struct piece {
	char *b;
	size_t n;
	bool over;
};

static int begin(struct piece *p, struct mask_out *out)
{
	if (!out->buf) {
		out->buf = malloc(MASK_OUT_MAX + 1);
		if (!out->buf)
			return -ENOMEM;
		out->buf[0] = '\0';
	}
	*p = (struct piece){ .b = out->buf };
	return 0;
}

static void put(struct piece *p, const void *s, size_t n)
{
	if (p->over || n > MASK_OUT_MAX - p->n) {
		p->over = true;
		return;
	}
	memcpy(p->b + p->n, s, n);
	p->n += n;
}

static void put_str(struct piece *p, const char *s)
{
	put(p, s, strlen(s));
}

static int finish(const struct piece *p, struct mask_out *out)
{
	/* Every method's output is bounded well under the cap (the longest is
	 * email: 4 + 4 + DOMAIN_MAX bytes); reaching it means a bug, and a
	 * value we cannot vouch for is refused, not cut. */
	if (p->over) {
		out->buf[0] = '\0';
		out->len = 0;
		return MASKV_REFUSE;
	}
	out->buf[p->n] = '\0';
	out->len = p->n;
	return MASKV_VALUE;
}

/* ---- UTF-8 ---- */

static bool cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Length (1-4) of the well-formed UTF-8 character at s[0..n), or 0: a NUL,
 * a stray continuation byte, an overlong form, a surrogate, past U+10FFFF
 * or cut short. (The Unicode standard's table 3-7.) */
static size_t u8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && cont(s[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;

		return n >= 3 && s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;

		return n >= 4 && s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
	}
	return 0;
}

/* Characters in s[0..n), or -1 when it is not valid UTF-8 (or holds NUL). */
static long u8_count(const unsigned char *s, size_t n)
{
	long chars = 0;

	for (size_t i = 0; i < n; chars++) {
		size_t l = u8_len(s + i, n - i);

		if (!l)
			return -1;
		i += l;
	}
	return chars;
}

/* ---- methods ---- */

static void do_last4(struct piece *p, const unsigned char *s, size_t n)
{
	put_str(p, "****");
	if (u8_count(s, n) >= 8) {
		size_t from = n;

		/* Valid UTF-8: stepping back over continuation bytes lands on
		 * the first byte of each character. */
		for (int k = 0; k < 4; k++) {
			from--;
			while (from > 0 && cont(s[from]))
				from--;
		}
		put(p, s + from, n - from);
	}
}

static bool domain_ok(const unsigned char *d, size_t n)
{
	if (n == 0 || n > DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = d[i];

		if (c == '.' && d[i - 1] == '.')
			return false;
		/* Non-ASCII bytes are parts of characters already checked
		 * as valid UTF-8. */
		if (!(c >= 0x80 || c == '.' || c == '-' || (c >= '0' && c <= '9') ||
		      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

static void do_email(struct piece *p, const unsigned char *s, size_t n)
{
	const unsigned char *at = NULL, *domain;
	size_t dlen = 0;

	if (u8_count(s, n) >= 0)
		for (size_t i = n; i > 0; i--)
			if (s[i - 1] == '@') {
				at = s + i - 1;
				break;
			}
	if (at) {
		domain = at + 1;
		dlen = n - (size_t)(domain - s);
	}
	if (!at || at == s || !domain_ok(domain, dlen)) {
		put_str(p, MASK_REDACTED);
		return;
	}
	/* The first character ends before the '@': '@' is ASCII, so no
	 * multi-byte character contains it. */
	put(p, s, u8_len(s, (size_t)(at - s)));
	put_str(p, "***@");
	put(p, domain, dlen);
}

static int do_hash(struct piece *p, const struct mask_key *key, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	EVP_MAC_CTX *c;
	bool ok;

	/* The keyed state is shared by every thread: each value works on its
	 * own copy of it, which is cheaper than keying again. */
	c = EVP_MAC_CTX_dup(key->mac);
	if (!c) {
		ERR_clear_error();
		return -ENOMEM;
	}
	ok = EVP_MAC_update(c, s, n) && EVP_MAC_final(c, md, &mdlen, sizeof(md)) &&
	     mdlen >= HASH_HEX / 2;
	EVP_MAC_CTX_free(c);
	if (!ok) {
		ERR_clear_error();
		return -ENOMEM;
	}
	put_str(p, "h:");
	for (size_t i = 0; i < HASH_HEX / 2; i++) {
		char two[2] = { hex[md[i] >> 4], hex[md[i] & 15] };

		put(p, two, 2);
	}
	return 0;
}

int mask_value(enum mask_method m, const struct mask_key *key, uint32_t typoid,
	       const char *in, size_t len, struct mask_out *out)
{
	const unsigned char *s = (const unsigned char *)in;
	bool text = mask_type_is_text(typoid);
	struct piece p;
	int r;

	switch (m) {
	case MASK_NULL:
		return MASKV_NULL;
	case MASK_REDACT:
		if (!text)
			return MASKV_NULL;
		break;
	case MASK_HASH:
		if (!key || !key->mac)
			return -EINVAL;
		/* fall through */
	case MASK_LAST4:
	case MASK_EMAIL:
		if (!text)
			return MASKV_REFUSE;
		break;
	default:
		return -EINVAL;
	}
	if (typoid == MASK_OID_BPCHAR)
		while (len > 0 && s[len - 1] == ' ')
			len--;
	r = begin(&p, out);
	if (r < 0)
		return r;
	switch (m) {
	case MASK_LAST4:
		do_last4(&p, s, len);
		break;
	case MASK_EMAIL:
		do_email(&p, s, len);
		break;
	case MASK_HASH:
		r = do_hash(&p, key, s, len);
		if (r < 0)
			return r;
		break;
	default:
		put_str(&p, MASK_REDACTED);
		break;
	}
	return finish(&p, out);
}

/* ---- key ---- */

void mask_key_wipe(struct mask_key *k)
{
	if (!k)
		return;
	/* EVP_MAC_CTX_free cleanses the HMAC state (and OpenSSL's copy of
	 * the key) before freeing it. */
	EVP_MAC_CTX_free(k->mac);
	k->mac = NULL;
}

int mask_key_set(struct mask_key *k, const void *bytes, size_t len)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *c;
	EVP_MAC *mac;

	if (len < MASK_KEY_MIN || len > MASK_KEY_MAX)
		return -EINVAL;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac) {
		ERR_clear_error();
		return -EOPNOTSUPP;
	}
	c = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac); /* the context holds its own reference */
	if (!c || !EVP_MAC_init(c, bytes, len, params)) {
		EVP_MAC_CTX_free(c);
		ERR_clear_error();
		return -ENOMEM;
	}
	mask_key_wipe(k);
	k->mac = c;
	return 0;
}

static void say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Read the whole file into buf (cap bytes); *have = bytes read. A file
 * that fills buf is longer than any key. */
static int read_all(int fd, unsigned char *buf, size_t cap, size_t *have)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*have = n;
	return 0;
}

int mask_key_load(const char *path, struct mask_key *k, char *why, size_t whylen)
{
	/* Room for the longest key, "\r\n", and one byte to tell a longer
	 * file. On the stack, so no heap copy of the key to wipe. */
	unsigned char buf[MASK_KEY_MAX + 3];
	size_t have = 0;
	struct stat st;
	int fd, r;

	/* O_NONBLOCK: a FIFO put where the key should be must not hang us;
	 * it is refused below as not a regular file. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ELOOP)
			say(why, whylen, "%s: is a symbolic link; name the key file itself", path);
		else
			say(why, whylen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		say(why, whylen, "%s: cannot stat: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		say(why, whylen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = -EPERM;
		say(why, whylen, "%s: owned by uid %lu; a key file must be owned by root or uid %lu",
		    path, (unsigned long)st.st_uid, (unsigned long)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		say(why, whylen, "%s: mode %04o lets group or others at the key; chmod 600 it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	r = read_all(fd, buf, sizeof(buf), &have);
	if (r < 0) {
		say(why, whylen, "%s: cannot read: %s", path, strerror(-r));
		goto out;
	}
	if (have == sizeof(buf)) {
		r = -EINVAL;
		say(why, whylen, "%s: longer than %d bytes; a key is %d to %d bytes",
		    path, MASK_KEY_MAX, MASK_KEY_MIN, MASK_KEY_MAX);
		goto out;
	}
	if (have > 0 && buf[have - 1] == '\n') {
		have--;
		if (have > 0 && buf[have - 1] == '\r')
			have--;
	}
	if (have < MASK_KEY_MIN || have > MASK_KEY_MAX) {
		r = -EINVAL;
		say(why, whylen, "%s: %zu bytes; a key is %d to %d bytes (openssl rand -hex 32 > FILE)",
		    path, have, MASK_KEY_MIN, MASK_KEY_MAX);
		goto out;
	}
	r = mask_key_set(k, buf, have);
	if (r < 0)
		say(why, whylen, "%s: cannot set up HMAC-SHA256: %s", path, strerror(-r));
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return r;
}

/* ---- detectors ---- */

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(unsigned char c)
{
	return is_digit(c) || is_alpha(c);
}

static bool luhn_ok(const unsigned char *d, size_t n)
{
	unsigned sum = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned v = d[n - 1 - i];

		if (i & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* The first digits of a card network's numbers: 3-6 (American Express,
 * Diners, JCB, Visa, Mastercard, Discover, Maestro, UnionPay), Mastercard's
 * 2221-2720, UATP's 15 digits starting with 1. This is what keeps order
 * numbers and timestamps that start with a year (19.., 20..) out. */
static bool card_prefix(const unsigned char *d, size_t n)
{
	unsigned four = d[0] * 1000u + d[1] * 100u + d[2] * 10u + d[3];

	if (d[0] >= 3 && d[0] <= 6)
		return true;
	if (d[0] == 2)
		return four >= 2221 && four <= 2720;
	return d[0] == 1 && n == 15;
}

/* Groups of 4 with a last group of 1-4, or 4-6-5 / 4-6-4, or no groups. */
static bool card_shape(const unsigned char *g, size_t ng)
{
	if (ng == 1)
		return true;
	if (ng == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4))
		return true;
	for (size_t i = 0; i + 1 < ng; i++)
		if (g[i] != 4)
			return false;
	return g[ng - 1] >= 1 && g[ng - 1] <= 4;
}

/* A card starting at s[i], the first digit of a digit run. Reads at most
 * CARD_MAX digits, their separators and one digit more. */
static bool card_at(const unsigned char *s, size_t n, size_t i)
{
	unsigned char d[CARD_MAX], g[CARD_MAX];
	size_t nd = 0, ng = 0;
	unsigned char sep = 0;

	for (;;) {
		size_t start = nd;

		while (i < n && is_digit(s[i])) {
			if (nd == CARD_MAX)
				return false; /* no card ends inside this group */
			d[nd++] = (unsigned char)(s[i++] - '0');
		}
		g[ng++] = (unsigned char)(nd - start);
		if (nd >= CARD_MIN && card_shape(g, ng) && card_prefix(d, nd) && luhn_ok(d, nd))
			return true;
		if (i + 1 >= n || (s[i] != ' ' && s[i] != '-') || !is_digit(s[i + 1]) ||
		    (sep && s[i] != sep) || nd == CARD_MAX)
			return false;
		sep = s[i++];
	}
}

static bool find_card(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_digit(s[i]) && (i == 0 || !is_digit(s[i - 1])) && card_at(s, n, i))
			return true;
	return false;
}

static unsigned num(const unsigned char *s, size_t n)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	return v;
}

/* s[0..9) are nine digits AAAGGSSSS. */
static bool ssn_valid(const unsigned char *s)
{
	unsigned area = num(s, 3), group = num(s + 3, 2), serial = num(s + 5, 4);

	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

static bool all_digits(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

static bool find_ssn(const unsigned char *s, size_t n)
{
	size_t a = 0, b = n;

	while (a < b && s[a] == ' ')
		a++;
	while (b > a && s[b - 1] == ' ')
		b--;
	if (b - a == 9 && all_digits(s + a, 9) && ssn_valid(s + a))
		return true;
	for (size_t i = 0; i + 11 <= n; i++) {
		unsigned char nine[9];

		if (!is_digit(s[i]) || (i > 0 && is_digit(s[i - 1])))
			continue;
		/* Not the tail of a longer dash-joined number. */
		if (i >= 2 && s[i - 1] == '-' && is_digit(s[i - 2]))
			continue;
		if (!all_digits(s + i, 3) || s[i + 3] != '-' || !all_digits(s + i + 4, 2) ||
		    s[i + 6] != '-' || !all_digits(s + i + 7, 4))
			continue;
		if (i + 11 < n && (is_digit(s[i + 11]) ||
				   (s[i + 11] == '-' && i + 12 < n && is_digit(s[i + 12]))))
			continue;
		memcpy(nine, s + i, 3);
		memcpy(nine + 3, s + i + 4, 2);
		memcpy(nine + 5, s + i + 7, 4);
		if (ssn_valid(nine))
			return true;
	}
	return false;
}

static bool email_local(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static bool email_domain(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '-';
}

/* d[0..n): a domain with no empty label, a dot, and a TLD of 2+ letters. */
static bool domain_plausible(const unsigned char *d, size_t n)
{
	size_t last_dot = n;

	if (n == 0 || d[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i] == '.') {
			if (d[i - 1] == '.')
				return false;
			last_dot = i;
		}
	if (last_dot == n || n - last_dot - 1 < 2)
		return false;
	for (size_t i = last_dot + 1; i < n; i++)
		if (!is_alpha(d[i]))
			return false;
	return true;
}

/* Each '@' looks left and right only over characters that are not '@', so
 * no byte is looked at by more than two of them: linear. */
static bool find_email(const unsigned char *s, size_t n)
{
	for (size_t at = 0; at < n; at++) {
		size_t l = at, r = at + 1;

		if (s[at] != '@')
			continue;
		while (l > 0 && email_local(s[l - 1]))
			l--;
		while (r < n && email_domain(s[r]))
			r++;
		/* "write to bob@example.org." : the sentence's dot is not the
		 * domain's. */
		while (r > at + 1 && (s[r - 1] == '.' || s[r - 1] == '-'))
			r--;
		if (l < at && domain_plausible(s + at + 1, r - at - 1))
			return true;
	}
	return false;
}

/* IBAN lengths by country, from SWIFT's IBAN registry (2024). A
 * country not listed is held to the general 15-34. */
static const struct {
	char cc[3];
	unsigned char len;
} iban_len[] = {
	{ "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 }, { "BA", 20 },
	{ "BE", 16 }, { "BG", 22 }, { "BH", 22 }, { "BI", 27 }, { "BR", 29 }, { "BY", 28 },
	{ "CH", 21 }, { "CR", 22 }, { "CY", 28 }, { "CZ", 24 }, { "DE", 22 }, { "DJ", 27 },
	{ "DK", 18 }, { "DO", 28 }, { "EE", 20 }, { "EG", 29 }, { "ES", 24 }, { "FI", 18 },
	{ "FK", 18 }, { "FO", 18 }, { "FR", 27 }, { "GB", 22 }, { "GE", 22 }, { "GI", 23 },
	{ "GL", 18 }, { "GR", 27 }, { "GT", 28 }, { "HN", 28 }, { "HR", 21 }, { "HU", 28 },
	{ "IE", 22 }, { "IL", 23 }, { "IQ", 23 }, { "IS", 26 }, { "IT", 27 }, { "JO", 30 },
	{ "KW", 30 }, { "KZ", 20 }, { "LB", 28 }, { "LC", 32 }, { "LI", 21 }, { "LT", 20 },
	{ "LU", 20 }, { "LV", 21 }, { "LY", 25 }, { "MC", 27 }, { "MD", 24 }, { "ME", 22 },
	{ "MK", 19 }, { "MN", 20 }, { "MR", 27 }, { "MT", 31 }, { "MU", 30 }, { "NI", 28 },
	{ "NL", 18 }, { "NO", 15 }, { "OM", 23 }, { "PK", 24 }, { "PL", 28 }, { "PS", 29 },
	{ "PT", 25 }, { "QA", 29 }, { "RO", 24 }, { "RS", 22 }, { "RU", 33 }, { "SA", 24 },
	{ "SC", 31 }, { "SD", 18 }, { "SE", 24 }, { "SI", 19 }, { "SK", 24 }, { "SM", 27 },
	{ "SO", 23 }, { "ST", 25 }, { "SV", 28 }, { "TL", 23 }, { "TN", 24 }, { "TR", 26 },
	{ "UA", 29 }, { "VA", 22 }, { "VG", 24 }, { "XK", 20 }, { "YE", 30 },
};

static unsigned char upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/* c[0..n): the IBAN's characters without spaces, letters upper-cased. */
static bool iban_valid(const unsigned char *c, size_t n)
{
	unsigned check = num(c + 2, 2), r = 0;

	if (check < 2 || check > 98)
		return false;
	for (size_t i = 0; i < sizeof(iban_len) / sizeof(iban_len[0]); i++)
		if (iban_len[i].cc[0] == c[0] && iban_len[i].cc[1] == c[1]) {
			if (n != iban_len[i].len)
				return false;
			break;
		}
	if (n < IBAN_MIN || n > IBAN_MAX)
		return false;
	/* ISO 13616: move the first four to the end, letters are 10..35, the
	 * number mod 97 must be 1; computed digit by digit. */
	for (size_t k = 0; k < n; k++) {
		unsigned char x = c[(k + 4) % n];

		r = is_digit(x) ? (r * 10 + (unsigned)(x - '0')) % 97 : (r * 100 + (unsigned)(x - 'A' + 10)) % 97;
	}
	return r == 1;
}

/* An IBAN starting at s[i], at the start of a letter-or-digit run. Reads at
 * most IBAN_MAX characters, their spaces and one character more. */
static bool iban_at(const unsigned char *s, size_t n, size_t i)
{
	unsigned char c[IBAN_MAX];
	size_t nc = 0;

	if (i + 4 > n || !is_alpha(s[i]) || !is_alpha(s[i + 1]) || !is_digit(s[i + 2]) ||
	    !is_digit(s[i + 3]))
		return false;
	for (;;) {
		size_t start = nc;

		while (i < n && is_alnum(s[i])) {
			if (nc == IBAN_MAX)
				return false; /* no IBAN ends inside this run */
			c[nc++] = upper(s[i++]);
		}
		/* Unbroken (a single run), or groups of 4 with a last of 1-4. */
		if ((start == 0 || nc - start <= 4) && iban_valid(c, nc))
			return true;
		if (nc - start != 4 || i + 1 >= n || s[i] != ' ' || !is_alnum(s[i + 1]))
			return false;
		i++;
	}
}

static bool find_iban(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_alpha(s[i]) && (i == 0 || !is_alnum(s[i - 1])) && iban_at(s, n, i))
			return true;
	return false;
}

uint32_t mask_detect(uint32_t detectors, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	uint32_t found = 0;

	if (len > MASK_DETECT_SCAN_MAX)
		len = MASK_DETECT_SCAN_MAX;
	if ((detectors & DETECT_CREDIT_CARD) && find_card(s, len))
		found |= DETECT_CREDIT_CARD;
	if ((detectors & DETECT_SSN) && find_ssn(s, len))
		found |= DETECT_SSN;
	if ((detectors & DETECT_EMAIL) && find_email(s, len))
		found |= DETECT_EMAIL;
	if ((detectors & DETECT_IBAN) && find_iban(s, len))
		found |= DETECT_IBAN;
	return found;
}
