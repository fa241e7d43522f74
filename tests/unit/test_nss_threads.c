/* libnss_sluice under concurrency: reader threads resolve names, ids,
 * groups and group lists, one thread enumerates, while a writer replaces
 * the snapshot files (two generations of 1,000 users and 100 groups),
 * makes them world-writable and deletes them, and the main thread forks
 * children that resolve a user before exiting (a lock inherited held
 * would hang them). Every answer must be whole and from one generation:
 * an entry or an enumeration never mixes the two. Meant to run under
 * ASan too (--enable-sanitizers). NSS_STRESS_SECONDS sets the length
 * (default 2). */
#include "config.h"
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nss/nss_sluice.h"
#include "tests/unit/nss_testdir.h"

#define USERS 1000
#define GROUPS 100
#define UID0 100000u
#define GID0 200000u
#define READERS 6

static struct nss_testdir dir;
static volatile int stop;
static unsigned long failures, lookups, unavailable, enumerations, forks;
static char fail_msg[256];

static void record_failure(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED) == 0) {
		va_start(ap, fmt);
		vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
		va_end(ap);
	}
}

/* Generation g: group j's members are users [10j + 5g, 10j + 5g + 10). */
static int member_of(int gen, int user, int group)
{
	int lo = 10 * group + 5 * gen;

	return user >= lo && user < lo + 10;
}

static char *render(int gen, int group_file, size_t *len)
{
	size_t cap = 256 * 1024, n = 0;
	char *b = malloc(cap);
	int i, u;

	if (!b)
		abort();
	n += (size_t)snprintf(b + n, cap - n, "# sluice nss snapshot v1\n");
	if (!group_file) {
		for (i = 0; i < USERS; i++)
			n += (size_t)snprintf(b + n, cap - n, "u%04d:x:%u:%u:gen%d u%04d:/nonexistent:/usr/sbin/nologin\n",
					      i, UID0 + i, UID0 + i, gen, i);
	} else {
		for (i = 0; i < GROUPS; i++) {
			int first = 1;

			n += (size_t)snprintf(b + n, cap - n, "g%03d:x:%u:", i, GID0 + i);
			for (u = 0; u < USERS; u++) {
				if (!member_of(gen, u, i))
					continue;
				n += (size_t)snprintf(b + n, cap - n, "%su%04d", first ? "" : ",", u);
				first = 0;
			}
			n += (size_t)snprintf(b + n, cap - n, "\n");
		}
	}
	*len = n;
	return b;
}

static unsigned rnd(unsigned *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int check_pw(const struct passwd *pw, int i)
{
	char want0[64], want1[64];

	snprintf(want0, sizeof(want0), "gen0 u%04d", i);
	snprintf(want1, sizeof(want1), "gen1 u%04d", i);
	if (pw->pw_uid != UID0 + (unsigned)i || pw->pw_gid != UID0 + (unsigned)i ||
	    (strcmp(pw->pw_gecos, want0) != 0 && strcmp(pw->pw_gecos, want1) != 0) ||
	    strcmp(pw->pw_dir, "/nonexistent") != 0 || strcmp(pw->pw_shell, "/usr/sbin/nologin") != 0)
		return -1;
	return pw->pw_gecos[3] - '0';
}

/* The members must be exactly one generation's list. */
static int check_gr(const struct group *gr, int j)
{
	char name[16];
	int gen;

	snprintf(name, sizeof(name), "g%03d", j);
	if (strcmp(gr->gr_name, name) != 0 || gr->gr_gid != GID0 + (unsigned)j)
		return -1;
	for (gen = 0; gen < 2; gen++) {
		int u, k = 0, ok = 1;

		for (u = 0; u < USERS && ok; u++) {
			char m[16];

			if (!member_of(gen, u, j))
				continue;
			snprintf(m, sizeof(m), "u%04d", u);
			ok = gr->gr_mem[k] && strcmp(gr->gr_mem[k], m) == 0;
			k++;
		}
		if (ok && gr->gr_mem[k] == NULL)
			return gen;
	}
	return -1;
}

static void count_status(enum nss_status st, int err, const char *what)
{
	__atomic_fetch_add(&lookups, 1, __ATOMIC_RELAXED);
	if (st == NSS_STATUS_UNAVAIL && err == ENOENT)
		__atomic_fetch_add(&unavailable, 1, __ATOMIC_RELAXED);
	else if (st != NSS_STATUS_SUCCESS)
		record_failure("%s: status %d errno %d", what, st, err);
}

static void one_lookup(unsigned *seed)
{
	/* Sometimes a buffer too small first, as glibc's getpwnam does. */
	size_t len = rnd(seed) % 8 == 0 ? 1 + rnd(seed) % 48 : 4096;
	int i = (int)(rnd(seed) % USERS), j = (int)(rnd(seed) % GROUPS);
	char *buf = malloc(4096);
	enum nss_status st;
	struct passwd pw;
	struct group gr;
	int err = 0;

	if (!buf)
		abort();
	switch (rnd(seed) % 5) {
	case 0: {
		char name[16];

		snprintf(name, sizeof(name), "u%04d", i);
		st = _nss_sluice_getpwnam_r(name, &pw, buf, len, &err);
		if (st == NSS_STATUS_TRYAGAIN && err == ERANGE)
			st = _nss_sluice_getpwnam_r(name, &pw, buf, 4096, &err);
		if (st == NSS_STATUS_SUCCESS && check_pw(&pw, i) < 0)
			record_failure("getpwnam_r %s: wrong entry %s %s", name, pw.pw_name, pw.pw_gecos);
		count_status(st, err, "getpwnam_r");
		break;
	}
	case 1:
		st = _nss_sluice_getpwuid_r(UID0 + (unsigned)i, &pw, buf, len, &err);
		if (st == NSS_STATUS_TRYAGAIN && err == ERANGE)
			st = _nss_sluice_getpwuid_r(UID0 + (unsigned)i, &pw, buf, 4096, &err);
		if (st == NSS_STATUS_SUCCESS && check_pw(&pw, i) < 0)
			record_failure("getpwuid_r %d: wrong entry", i);
		count_status(st, err, "getpwuid_r");
		break;
	case 2: {
		char name[16];

		snprintf(name, sizeof(name), "g%03d", j);
		st = _nss_sluice_getgrnam_r(name, &gr, buf, len, &err);
		if (st == NSS_STATUS_TRYAGAIN && err == ERANGE)
			st = _nss_sluice_getgrnam_r(name, &gr, buf, 4096, &err);
		if (st == NSS_STATUS_SUCCESS && check_gr(&gr, j) < 0)
			record_failure("getgrnam_r %s: members of no generation", name);
		count_status(st, err, "getgrnam_r");
		break;
	}
	case 3:
		st = _nss_sluice_getgrgid_r(GID0 + (unsigned)j, &gr, buf, len, &err);
		if (st == NSS_STATUS_TRYAGAIN && err == ERANGE)
			st = _nss_sluice_getgrgid_r(GID0 + (unsigned)j, &gr, buf, 4096, &err);
		if (st == NSS_STATUS_SUCCESS && check_gr(&gr, j) < 0)
			record_failure("getgrgid_r %d: members of no generation", j);
		count_status(st, err, "getgrgid_r");
		break;
	default: {
		gid_t *groups = malloc(sizeof(gid_t));
		long start = 1, size = 1, k;
		char name[16];
		int gen, okgen = 0;

		if (!groups)
			abort();
		groups[0] = UID0 + (unsigned)i;
		snprintf(name, sizeof(name), "u%04d", i);
		st = _nss_sluice_initgroups_dyn(name, groups[0], &start, &size, &groups, 0, &err);
		/* Users 0-4 are in no group in generation 1. */
		if (st == NSS_STATUS_NOTFOUND && i < 5)
			st = NSS_STATUS_SUCCESS;
		for (gen = 0; gen < 2 && st == NSS_STATUS_SUCCESS; gen++) {
			long want = 0;
			int g;

			for (g = 0; g < GROUPS; g++)
				want += member_of(gen, i, g);
			if (start != 1 + want)
				continue;
			for (k = 1; k < start; k++)
				if (!member_of(gen, i, (int)(groups[k] - GID0)))
					break;
			okgen |= k == start;
		}
		if (st == NSS_STATUS_SUCCESS && !okgen)
			record_failure("initgroups_dyn %s: %ld groups of no generation", name, start - 1);
		count_status(st, err, "initgroups_dyn");
		free(groups);
		break;
	}
	}
	free(buf);
}

static void *reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;

	while (!stop)
		one_lookup(&seed);
	return NULL;
}

/* One enumeration is one generation from start to end (it is pinned). */
static void *enumerator(void *arg)
{
	char buf[1024];

	while (!stop) {
		struct passwd pw;
		int err = 0, n = 0, gen = -1;
		enum nss_status st = _nss_sluice_setpwent();

		if (st == NSS_STATUS_SUCCESS) {
			while ((st = _nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err)) == NSS_STATUS_SUCCESS) {
				int g = check_pw(&pw, n);

				if (g < 0 || (gen >= 0 && g != gen)) {
					record_failure("getpwent_r #%d: %s %s (generation %d so far)", n, pw.pw_name, pw.pw_gecos, gen);
					break;
				}
				gen = g;
				n++;
			}
			if (st == NSS_STATUS_NOTFOUND && n != USERS)
				record_failure("enumeration ended after %d entries", n);
		}
		_nss_sluice_endpwent();
		__atomic_fetch_add(&enumerations, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *writer(void *arg)
{
	size_t plen[2], glen[2];
	char *pwf[2] = { render(0, 0, &plen[0]), render(1, 0, &plen[1]) };
	char *grf[2] = { render(0, 1, &glen[0]), render(1, 1, &glen[1]) };
	char path[512];
	unsigned seed = 99, n = 0;

	while (!stop) {
		int gen = (int)(n++ % 2);

		if (nss_testdir_write(&dir, "passwd", pwf[gen], plen[gen], 0644) < 0 ||
		    nss_testdir_write(&dir, "group", grf[gen], glen[gen], 0644) < 0)
			record_failure("writer: %s", strerror(errno));
		switch (rnd(&seed) % 16) {
		case 0:
			nss_testdir_path(&dir, "passwd", path, sizeof(path));
			chmod(path, 0666);
			break;
		case 1:
			nss_testdir_path(&dir, "group", path, sizeof(path));
			unlink(path);
			break;
		default:
			break;
		}
		usleep(200 + rnd(&seed) % 800);
	}
	/* Leave good files for the forks still to come. */
	nss_testdir_write(&dir, "passwd", pwf[0], plen[0], 0644);
	nss_testdir_write(&dir, "group", grf[0], glen[0], 0644);
	free(pwf[0]);
	free(pwf[1]);
	free(grf[0]);
	free(grf[1]);
	return NULL;
}

/* The child resolves a user right after fork, while the parent's threads
 * may hold any of the module's locks. */
static void fork_and_resolve(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		record_failure("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		struct passwd pw;
		char buf[1024];
		int err = 0;
		enum nss_status st;

		alarm(20);
		st = _nss_sluice_getpwnam_r("u0007", &pw, buf, sizeof(buf), &err);
		_exit(st == NSS_STATUS_SUCCESS || st == NSS_STATUS_UNAVAIL ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid)
		record_failure("waitpid: %s", strerror(errno));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		record_failure("forked child: %s %d", WIFSIGNALED(status) ? "killed by signal" : "exit status",
		     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	__atomic_fetch_add(&forks, 1, __ATOMIC_RELAXED);
}

static void stress(void **state)
{
	const char *env = getenv("NSS_STRESS_SECONDS");
	double seconds = env ? atof(env) : 2.0;
	pthread_t r[READERS], e, w;
	struct timespec t0, t;
	size_t plen, glen;
	char *p = render(0, 0, &plen), *g = render(0, 1, &glen);
	int i;

	assert_int_equal(nss_testdir_write(&dir, "passwd", p, plen, 0644), 0);
	assert_int_equal(nss_testdir_write(&dir, "group", g, glen, 0644), 0);
	free(p);
	free(g);

	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)(i + 1)), 0);
	assert_int_equal(pthread_create(&e, NULL, enumerator, NULL), 0);
	assert_int_equal(pthread_create(&w, NULL, writer, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		fork_and_resolve();
		usleep(20000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	stop = 1;
	for (i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	pthread_join(e, NULL);
	pthread_join(w, NULL);

	print_message("%lu lookups (%lu unavailable), %lu enumerations, %lu forks\n", lookups, unavailable,
		      enumerations, forks);
	if (failures)
		print_error("%lu failures; the first: %s\n", failures, fail_msg);
	assert_int_equal(failures, 0);
	/* The run did what it is for: most answers were real ones. */
	assert_true(lookups > 1000);
	assert_true(unavailable < lookups / 2);
	assert_true(enumerations > 0);
	assert_true(forks > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress),
	};
	int r;

	nss_testdir_create(&dir);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	nss_testdir_remove(&dir);
	return r;
}
