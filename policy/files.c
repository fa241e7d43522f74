#include "config.h"
#include "policy/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int conf_read_file(const char *path, size_t max, char **text, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t have = 0;
	int fd, r;

	/* O_NONBLOCK: a FIFO named like a config must not hang the agent. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto fail;
	}
	/* Read up to max + 1 whatever st_size said: the file may be growing. */
	buf = malloc(max + 2);
	if (!buf) {
		r = -ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, max + 1 - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max) {
			r = -EFBIG;
			goto fail;
		}
	}
	close(fd);
	buf[have] = '\0';
	*text = buf;
	*len = have;
	return 0;
fail:
	free(buf);
	close(fd);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_conf_name(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".conf") == 0;
}

int confd_list(const char *dir, size_t max, char ***names, size_t *n)
{
	char **out = NULL;
	size_t cnt = 0;
	struct dirent *de;
	DIR *dp;
	int fd, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		r = -errno;
		close(fd);
		return r;
	}
	for (;;) {
		char **nv;

		errno = 0;
		de = readdir(dp);
		if (!de) {
			if (errno)
				r = -errno;
			break;
		}
		if (!is_conf_name(de->d_name))
			continue;
		if (cnt >= max) {
			r = -E2BIG;
			break;
		}
		nv = realloc(out, (cnt + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		out = nv;
		out[cnt] = strdup(de->d_name);
		if (!out[cnt]) {
			r = -ENOMEM;
			break;
		}
		cnt++;
	}
	closedir(dp);
	if (r < 0) {
		for (size_t i = 0; i < cnt; i++)
			free(out[i]);
		free(out);
		return r;
	}
	if (cnt > 1)
		qsort(out, cnt, sizeof(*out), name_cmp);
	*names = out;
	*n = cnt;
	return 0;
}

char *confd_dir_for(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	if (!slash)
		return strdup("conf.d");
	if (asprintf(&dir, "%.*s/conf.d", (int)(slash - path), path) < 0)
		return NULL;
	return dir;
}
