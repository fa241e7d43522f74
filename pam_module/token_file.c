#include "config.h"
#include "pam_module/token_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_file(int fd, uid_t owner_uid, const char **why)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		*why = "cannot stat the file";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return -EINVAL;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*why = "group- or world-writable";
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != owner_uid) {
		*why = "owned by another user";
		return -EPERM;
	}
	if (st.st_size > PAM_SLUICE_TOKEN_MAX) {
		*why = "larger than 16 KiB";
		return -EFBIG;
	}
	return 0;
}

int pam_sluice_token_file_read(const char *path, uid_t owner_uid, char **out, const char **why)
{
	/* One byte more than the cap tells a file that grew after fstat. */
	char *buf = NULL;
	size_t n = 0;
	int fd, r;

	/* O_NONBLOCK: a FIFO put in the token's place must not hang the
	 * login; fstat refuses it right after. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		*why = r == -ELOOP ? "a symbolic link" : r == -ENOENT ? "no such file" : r == -EACCES ? "permission denied" : "cannot open";
		return r;
	}
	r = check_file(fd, owner_uid, why);
	if (r < 0)
		goto out;
	buf = malloc(PAM_SLUICE_TOKEN_MAX + 2);
	if (!buf) {
		*why = "out of memory";
		r = -ENOMEM;
		goto out;
	}
	while (n < PAM_SLUICE_TOKEN_MAX + 1) {
		ssize_t k = read(fd, buf + n, PAM_SLUICE_TOKEN_MAX + 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			*why = "read error";
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > PAM_SLUICE_TOKEN_MAX) {
		*why = "larger than 16 KiB";
		r = -EFBIG;
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		*why = "empty";
		r = -ENODATA;
		goto out;
	}
	if (memchr(buf, '\0', n)) {
		*why = "contains a NUL byte";
		r = -EINVAL;
		goto out;
	}
	*out = buf;
	buf = NULL;
	r = 0;
out:
	secret_free(buf, PAM_SLUICE_TOKEN_MAX + 2);
	close(fd);
	return r;
}
