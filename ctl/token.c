#include "config.h"
#include "ctl/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Read fd to end of file into buf[0..cap]; more than cap bytes is -EFBIG. */
static int read_capped(int fd, char *buf, size_t cap, size_t *got)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, buf + n, cap + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > cap)
			return -EFBIG;
	}
	*got = n;
	return 0;
}

int ctl_token_read(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	bool from_stdin = strcmp(path, "-") == 0;
	const char *what = from_stdin ? "standard input" : path;
	char *buf = NULL, *tok = NULL;
	size_t n = 0, start, end;
	struct stat st;
	int fd = -1, r;

	if (from_stdin) {
		fd = STDIN_FILENO;
	} else {
		/* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot open the token file %s: %s", path, strerror(-r));
			return r;
		}
		if (fstat(fd, &st) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot read the token file %s: %s", path, strerror(-r));
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			r = -EMEDIUMTYPE;
			snprintf(err, errlen, "the token file %s is not a regular file", path);
			goto out;
		}
	}
	buf = malloc(CTL_TOKEN_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r = read_capped(fd, buf, CTL_TOKEN_MAX, &n);
	if (r == -EFBIG) {
		snprintf(err, errlen, "the token in %s is larger than %d bytes", what, CTL_TOKEN_MAX);
		goto out;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot read the token from %s: %s", what, strerror(-r));
		goto out;
	}
	for (start = 0; start < n && is_blank((unsigned char)buf[start]); start++)
		;
	for (end = n; end > start && is_blank((unsigned char)buf[end - 1]); end--)
		;
	if (start == end) {
		r = -ENODATA;
		snprintf(err, errlen, "%s%s holds no token", from_stdin ? "" : "the token file ", what);
		goto out;
	}
	for (size_t i = start; i < end; i++)
		if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e) {
			r = -EINVAL;
			snprintf(err, errlen, "%s%s does not hold a token (a token is one word of printable ASCII)",
				 from_stdin ? "" : "the token file ", what);
			goto out;
		}
	tok = malloc(end - start + 1);
	if (!tok) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(tok, buf + start, end - start);
	tok[end - start] = '\0';
	*out = tok;
	*len = end - start;
	r = 0;
out:
	secret_free(buf, CTL_TOKEN_MAX + 1);
	if (fd >= 0 && !from_stdin)
		close(fd);
	return r;
}

void ctl_token_digest(const char *tok, size_t len, unsigned char out[CTL_TOKEN_DIGEST_LEN])
{
	unsigned int n = CTL_TOKEN_DIGEST_LEN;

	if (EVP_Digest(tok, len, out, &n, EVP_sha256(), NULL) != 1 || n != CTL_TOKEN_DIGEST_LEN)
		/* Cannot happen with a working libcrypto; an all-zero digest
		 * only makes the next comparison see a change. */
		memset(out, 0, CTL_TOKEN_DIGEST_LEN);
}

const char *ctl_token_path(const char *path)
{
	const char *env;

	if (path)
		return path;
	env = getenv("SLUICE_TOKEN_FILE");
	return env && *env ? env : NULL;
}
