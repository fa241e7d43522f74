/* Client side of PostgreSQL authentication: SCRAM-SHA-256, md5, cleartext.
 * See pgauth.h for the flow. Cleanup style: goto out. */
#include "config.h"
#include "agent/pgauth.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SCRAM_KEY_LEN SHA256_DIGEST_LENGTH
#define SCRAM_NONCE_RAW 18 /* bytes of randomness; libpq uses 18 too */
#define SCRAM_MAX_NONCE 255
#define SCRAM_MAX_USER 255

enum scram_state {
	SCRAM_INIT,
	SCRAM_FIRST_SENT,
	SCRAM_FINAL_SENT,
	SCRAM_DONE,
	SCRAM_FAILED,
};

struct scram {
	enum scram_state state;
	char client_nonce[SCRAM_MAX_NONCE + 1];
	char user[3 * SCRAM_MAX_USER + 1]; /* saslname-escaped; empty for the proxy */
	/* client-first-message-bare, kept until the AuthMessage is built. */
	char *client_first_bare;
	uint8_t server_signature[SCRAM_KEY_LEN];
	const char *err;
	char err_buf[160];
};

/* --- base64 (RFC 4648, with padding, no whitespace: strict on input) --- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define B64_LEN(n) (((n) + 2) / 3 * 4)
static size_t b64_encoded_len(size_t n) { return B64_LEN(n); }

/* out must hold b64_encoded_len(n) + 1 bytes. */
static void b64_encode(const uint8_t *p, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode exactly n characters of s into out (capacity cap). Returns the
 * decoded length or -EBADMSG; rejects bad characters, missing or misplaced
 * padding and non-zero padding bits, so every value has one encoding. */
static ssize_t b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0;

	if (n == 0 || n % 4 != 0)
		return -EBADMSG;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		bool last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && last && k >= 2) {
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad)
				return -EBADMSG; /* data after '=' */
			v[k] = b64_value(s[i + k]);
			if (v[k] < 0)
				return -EBADMSG;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -EBADMSG;
		if (o + (size_t)(3 - pad) > cap)
			return -EBADMSG;
		out[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)w;
	}
	return (ssize_t)o;
}

/* --- state --- */

static int fail(struct scram *s, int r, const char *why)
{
	s->state = SCRAM_FAILED;
	s->err = why;
	return r;
}

static bool nonce_is_valid(const char *p, size_t n)
{
	/* RFC 5802: printable = %x21-2B / %x2D-7E (printable ASCII except ','). */
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

int scram_new_with_nonce(const char *user, const char *nonce, struct scram **out)
{
	struct scram *s;
	size_t n = nonce ? strlen(nonce) : 0, o = 0;

	if (n > SCRAM_MAX_NONCE || !nonce_is_valid(nonce, n))
		return -EINVAL;
	if (user && strlen(user) > SCRAM_MAX_USER)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->client_nonce, nonce, n + 1);
	/* saslname: '=' and ',' are written =3D and =2C (RFC 5802 5.1). */
	for (const char *u = user ? user : ""; *u; u++) {
		if (*u == '=' || *u == ',') {
			memcpy(s->user + o, *u == '=' ? "=3D" : "=2C", 3);
			o += 3;
		} else {
			s->user[o++] = *u;
		}
	}
	s->user[o] = '\0';
	s->state = SCRAM_INIT;
	s->err = "";
	*out = s;
	return 0;
}

int scram_new(struct scram **out)
{
	uint8_t raw[SCRAM_NONCE_RAW];
	char nonce[B64_LEN(SCRAM_NONCE_RAW) + 1];
	int r;

	r = random_bytes(raw, sizeof(raw));
	if (r < 0)
		return r;
	b64_encode(raw, sizeof(raw), nonce);
	r = scram_new_with_nonce(NULL, nonce, out);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(nonce, sizeof(nonce));
	return r;
}

struct scram *scram_free(struct scram *s)
{
	if (!s)
		return NULL;
	secret_free_str(s->client_first_bare);
	explicit_bzero(s, sizeof(*s));
	free(s);
	return NULL;
}

bool scram_done(const struct scram *s)
{
	return s && s->state == SCRAM_DONE;
}

const char *scram_error(const struct scram *s)
{
	return s && s->err ? s->err : "";
}

int scram_client_first(struct scram *s, struct buf *out)
{
	size_t start = out->len, n;
	char *bare;
	int r;

	if (s->state != SCRAM_INIT)
		return fail(s, -EINVAL, "SCRAM client-first-message out of sequence");
	/* The user name is empty, as libpq sends it: PostgreSQL takes the role
	 * from the startup packet and ignores this one. */
	n = strlen("n=,r=") + strlen(s->user) + strlen(s->client_nonce);
	bare = malloc(n + 1);
	if (!bare)
		return -ENOMEM;
	snprintf(bare, n + 1, "n=%s,r=%s", s->user, s->client_nonce);
	/* GS2 header "n,,": no channel binding, no authzid. */
	r = buf_append(out, "n,,", 3);
	if (r == 0)
		r = buf_append(out, bare, n);
	if (r < 0) {
		out->len = start;
		free(bare);
		return r; /* ENOMEM/EMSGSIZE: nothing changed, may be retried */
	}
	s->client_first_bare = bare;
	s->state = SCRAM_FIRST_SENT;
	return 0;
}

/* Read "X=value" at *p (up to end), stopping at ',' or end. Sets *val and
 * *vlen and advances *p past the value and a following ','. */
static int read_attr(const char **p, const char *end, char attr, const char **val, size_t *vlen)
{
	const char *q = *p, *v;

	if (end - q < 2 || q[0] != attr || q[1] != '=')
		return -EBADMSG;
	v = q + 2;
	q = memchr(v, ',', (size_t)(end - v));
	if (!q)
		q = end;
	*val = v;
	*vlen = (size_t)(q - v);
	*p = q < end ? q + 1 : q;
	return 0;
}

static int hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t n,
		       uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int len = SCRAM_KEY_LEN;

	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &len) || len != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

int scram_client_final(struct scram *s, const char *password,
		       const uint8_t *server_first, size_t len, struct buf *out)
{
	const char *p = (const char *)server_first, *end = p + len;
	const char *nonce, *salt64, *iter;
	size_t nonce_len, salt64_len, iter_len, cn_len, auth_len, final_len, proof_off;
	uint8_t salt[SCRAM_MAX_SERVER_MSG];
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char iter_str[16];
	char *auth = NULL, *final = NULL;
	const char *pw;
	uint64_t iterations;
	ssize_t salt_len;
	int r;

	if (s->state != SCRAM_FIRST_SENT)
		return fail(s, -EINVAL, "SCRAM server-first-message out of sequence");
	if (!password || !*password)
		return fail(s, -EINVAL, "no password for SCRAM authentication");
	if (len == 0 || len > SCRAM_MAX_SERVER_MSG || memchr(server_first, '\0', len))
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (length)");

	/* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
	 * PostgreSQL sends exactly r=,s=,i=; a mandatory extension ("m=") we cannot
	 * honour is an error (RFC 5802 5.1), and so is anything after i=, as libpq
	 * does: fail closed on what we do not understand. */
	if (len >= 2 && p[0] == 'm' && p[1] == '=')
		return fail(s, -EPROTO, "SCRAM server-first-message has a mandatory extension");
	if (read_attr(&p, end, 'r', &nonce, &nonce_len) < 0)
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (nonce)");
	if (read_attr(&p, end, 's', &salt64, &salt64_len) < 0)
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (salt)");
	if (read_attr(&p, end, 'i', &iter, &iter_len) < 0)
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (iteration count)");
	if (p != end || (len > 0 && server_first[len - 1] == ','))
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (trailing data)");

	cn_len = strlen(s->client_nonce);
	if (!nonce_is_valid(nonce, nonce_len))
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (nonce)");
	/* The combined nonce must start with ours and add the server's part. */
	if (nonce_len <= cn_len || memcmp(nonce, s->client_nonce, cn_len) != 0)
		return fail(s, -EPROTO, "SCRAM server nonce does not extend the client nonce");

	salt_len = b64_decode(salt64, salt64_len, salt, sizeof(salt));
	if (salt_len <= 0)
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (salt is not base64)");

	if (iter_len == 0 || iter_len >= sizeof(iter_str))
		return fail(s, iter_len ? -ERANGE : -EBADMSG,
			    iter_len ? "SCRAM iteration count out of range" :
				       "malformed SCRAM server-first-message (iteration count)");
	memcpy(iter_str, iter, iter_len);
	iter_str[iter_len] = '\0';
	r = parse_u64(iter_str, SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS, &iterations);
	if (r == -ERANGE)
		return fail(s, -ERANGE, "SCRAM iteration count out of range (4096..10000000)");
	if (r < 0)
		return fail(s, -EBADMSG, "malformed SCRAM server-first-message (iteration count)");

	/* client-final-message-without-proof = "c=biws,r=" nonce; "biws" is
	 * base64("n,,"), the GS2 header we sent. Then ",p=" base64(proof). */
	final_len = strlen("c=biws,r=") + nonce_len + strlen(",p=") + b64_encoded_len(SCRAM_KEY_LEN);
	final = malloc(final_len + 1);
	if (!final) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(final, "c=biws,r=", 9);
	memcpy(final + 9, nonce, nonce_len);
	proof_off = 9 + nonce_len;

	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 *               client-final-message-without-proof */
	{
		size_t bare_len = strlen(s->client_first_bare);
		auth_len = bare_len + 1 + len + 1 + proof_off;
		auth = malloc(auth_len);
		if (!auth) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(auth, s->client_first_bare, bare_len);
		auth[bare_len] = ',';
		memcpy(auth + bare_len + 1, server_first, len);
		auth[bare_len + 1 + len] = ',';
		memcpy(auth + bare_len + 2 + len, final, proof_off);
	}

	/* SaltedPassword = Hi(SASLprep(password), salt, i) = PBKDF2-HMAC-SHA-256.
	 * SASLprep (RFC 4013) as PostgreSQL applies it (src/common/saslprep.c):
	 * a pure-ASCII password is used unchanged, and so it is here. For
	 * anything else we use the raw bytes too. PostgreSQL itself does that
	 * whenever SASLprep fails (invalid UTF-8, prohibited or unassigned code
	 * points), so those passwords authenticate, as do non-ASCII passwords
	 * already in normal form (NFKC, no non-ASCII spaces, no characters
	 * "mapped to nothing"). A password whose SASLprep form differs from its
	 * bytes fails authentication: closed, never open. Full SASLprep needs
	 * Unicode 3.2 normalisation tables we do not carry. */
	pw = password;
	if (strlen(pw) > INT_MAX ||
	    !PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, (int)iterations,
			       EVP_sha256(), SCRAM_KEY_LEN, salted)) {
		r = -EIO;
		s->err = "SCRAM key derivation failed";
		goto out;
	}
	/* ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey);
	 * ClientSignature = HMAC(StoredKey, AuthMessage);
	 * ClientProof = ClientKey XOR ClientSignature;
	 * ServerKey = HMAC(SaltedPassword, "Server Key");
	 * ServerSignature = HMAC(ServerKey, AuthMessage). */
	r = hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key);
	if (r == 0 && !SHA256(client_key, sizeof(client_key), stored_key))
		r = -EIO;
	if (r == 0)
		r = hmac_sha256(stored_key, sizeof(stored_key), auth, auth_len, client_sig);
	if (r == 0)
		r = hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key);
	if (r == 0)
		r = hmac_sha256(server_key, sizeof(server_key), auth, auth_len, s->server_signature);
	if (r < 0) {
		s->err = "SCRAM key derivation failed";
		goto out;
	}
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];

	memcpy(final + proof_off, ",p=", 3);
	b64_encode(proof, sizeof(proof), final + proof_off + 3);
	r = buf_append(out, final, final_len);
	if (r < 0)
		goto out;
	s->client_first_bare = (secret_free_str(s->client_first_bare), NULL);
	s->state = SCRAM_FINAL_SENT;
	r = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	explicit_bzero(client_sig, sizeof(client_sig));
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(proof, sizeof(proof));
	if (final)
		secret_free(final, final_len + 1);
	if (auth)
		secret_free(auth, auth_len);
	if (r < 0) {
		explicit_bzero(s->server_signature, sizeof(s->server_signature));
		/* Any failure past parsing ends the exchange: a half-derived state
		 * is never reused. */
		s->state = SCRAM_FAILED;
		if (!s->err || !*s->err)
			s->err = r == -ENOMEM ? "out of memory in SCRAM" : "SCRAM client-final-message too large";
	}
	return r;
}

/* Keep printable ASCII from a server-sent string, for the log. */
static void sanitise(char *dst, size_t cap, const char *src, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < cap; i++)
		dst[o++] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[o] = '\0';
}

int scram_verify_server_final(struct scram *s, const uint8_t *server_final, size_t len)
{
	const char *p = (const char *)server_final, *end = p + len, *v;
	uint8_t sig[SCRAM_KEY_LEN + 3];
	size_t vlen;
	ssize_t n;

	if (s->state != SCRAM_FINAL_SENT)
		return fail(s, -EINVAL, "SCRAM server-final-message out of sequence");
	if (len == 0 || len > SCRAM_MAX_SERVER_MSG || memchr(server_final, '\0', len))
		return fail(s, -EBADMSG, "malformed SCRAM server-final-message (length)");
	if (read_attr(&p, end, 'e', &v, &vlen) == 0) {
		char what[64];

		sanitise(what, sizeof(what), v, vlen);
		snprintf(s->err_buf, sizeof(s->err_buf), "SCRAM server reported an error: %s", what);
		explicit_bzero(s->server_signature, sizeof(s->server_signature));
		return fail(s, -EPERM, s->err_buf);
	}
	if (read_attr(&p, end, 'v', &v, &vlen) < 0 || p != end || server_final[len - 1] == ',')
		return fail(s, -EBADMSG, "malformed SCRAM server-final-message");
	n = b64_decode(v, vlen, sig, sizeof(sig));
	if (n != SCRAM_KEY_LEN)
		return fail(s, -EBADMSG, "malformed SCRAM server-final-message (signature)");
	if (CRYPTO_memcmp(sig, s->server_signature, SCRAM_KEY_LEN) != 0) {
		explicit_bzero(s->server_signature, sizeof(s->server_signature));
		return fail(s, -EACCES, "SCRAM server signature does not match: the server does not know the password");
	}
	explicit_bzero(s->server_signature, sizeof(s->server_signature));
	s->state = SCRAM_DONE;
	s->err = "";
	return 0;
}

int pgauth_sasl_offers_scram(const uint8_t *mechs, size_t len)
{
	const char *p = (const char *)mechs, *end = p + len;
	bool found = false;

	if (!mechs || len == 0)
		return -EBADMSG;
	for (;;) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		if (!nul)
			return -EBADMSG;
		if (nul == p) /* the empty name ends the list, and the message */
			return nul + 1 == end ? (found ? 0 : -ENOTSUP) : -EBADMSG;
		if (strcmp(p, PGAUTH_SCRAM_MECH) == 0)
			found = true;
		p = nul + 1;
	}
}

int pgauth_md5(const char *user, const char *password, const uint8_t salt[4],
	       char out[PGAUTH_MD5_LEN + 1])
{
	EVP_MD_CTX *ctx;
	uint8_t digest[16];
	char inner[33];
	unsigned int dlen = 0;
	int r = -EIO;

	if (!user || !password)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* inner = md5hex(password || user): the value pg_authid stores. It is
	 * password-equivalent for md5 auth, so it is wiped like the password. */
	if (!EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ||
	    !EVP_DigestUpdate(ctx, password, strlen(password)) ||
	    !EVP_DigestUpdate(ctx, user, strlen(user)) ||
	    !EVP_DigestFinal_ex(ctx, digest, &dlen) || dlen != sizeof(digest))
		goto out;
	hex_encode(digest, sizeof(digest), inner);
	if (!EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ||
	    !EVP_DigestUpdate(ctx, inner, 32) ||
	    !EVP_DigestUpdate(ctx, salt, 4) ||
	    !EVP_DigestFinal_ex(ctx, digest, &dlen) || dlen != sizeof(digest))
		goto out;
	memcpy(out, "md5", 3);
	hex_encode(digest, sizeof(digest), out + 3);
	r = 0;
out:
	explicit_bzero(digest, sizeof(digest));
	explicit_bzero(inner, sizeof(inner));
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Messages are small; anything near INT32_MAX is a bug, not a message. */
#define PG_MSG_MAX (1u << 20)

/* Append 'p' + length + the parts, rolling back on failure. */
static int put_p_message(struct buf *out, const void *a, size_t an, bool a_has_len,
			 const void *b, size_t bn)
{
	size_t start = out->len, body = an + (a_has_len ? 4 : 0) + bn;
	int r;

	if (an > PG_MSG_MAX || bn > PG_MSG_MAX || body > PG_MSG_MAX)
		return -EMSGSIZE;
	r = buf_reserve(out, 1 + 4 + body);
	if (r < 0)
		return r;
	/* Room is reserved: none of these can fail now. */
	r = buf_put_u8(out, 'p');
	if (r == 0)
		r = buf_put_u32(out, (uint32_t)(4 + body));
	if (r == 0)
		r = buf_append(out, a, an);
	if (r == 0 && a_has_len)
		r = buf_put_u32(out, (uint32_t)bn);
	if (r == 0)
		r = buf_append(out, b, bn);
	if (r < 0) {
		explicit_bzero(out->data + start, out->len - start);
		out->len = start;
	}
	return r;
}

int pg_msg_sasl_initial(struct buf *out, const char *mech, const void *data, size_t n)
{
	/* mechanism name with its NUL, then int32 length of the response */
	return put_p_message(out, mech, strlen(mech) + 1, true, data, n);
}

int pg_msg_sasl_response(struct buf *out, const void *data, size_t n)
{
	return put_p_message(out, NULL, 0, false, data, n);
}

int pg_msg_password(struct buf *out, const char *password)
{
	return put_p_message(out, NULL, 0, false, password, strlen(password) + 1);
}
