/* bench/nss_lookup: what a getpwnam_r costs through libnss_sluice with a
 * 1,000-entry snapshot, next to glibc's files module on a 1,000-entry
 * passwd file, measured in the same run.
 *
 *   bench/nss_lookup [-n N] [--module PATH]
 *
 * As root, when a mount namespace can be made, the real path, through
 * glibc's getpwnam_r and its NSS dispatch, in a re-executed child each:
 *   glibc -> sluice   nsswitch.conf "passwd: sluice", the built module
 *                     (--module, default nss/.libs/libnss_sluice.so.2)
 *                     found through LD_LIBRARY_PATH
 *   glibc -> files    nsswitch.conf "passwd: files", /etc/passwd holding
 *                     the same 1,000 entries (the baseline)
 * (a directory of the run's is bind-mounted over /etc for each).
 * And in any case, in this process:
 *   direct   _nss_sluice_getpwnam_r called directly (the module's code,
 *            compiled into this program): one lstat, a binary search, a copy
 *   scan     fopen, fgetpwent_r until the name, fclose over the same file:
 *            the files module's work, but slower (the baseline without root)
 * Each is run in 5 alternating rounds of N lookups (default 20000; the
 * files paths take N/10) of names in a shuffled order; the median round is
 * reported with its ratio to the baseline. Exit status 1 when a lookup
 * through the module takes more than the 5 µs target. See bench/README.md. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nss/nss_sluice.h"

#define ENTRIES 1000
#define ROUNDS 5
#define TARGET_US 5.0

static char names[ENTRIES][32];
static unsigned order[ENTRIES];

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, 0644) < 0 || close(fd) < 0)
		die(path);
}

/* 1,000 service identity names, and the shuffled order they are looked
 * up in (the same in the re-executed child). */
static void make_names(void)
{
	unsigned i, seed = 12345;

	for (i = 0; i < ENTRIES; i++) {
		snprintf(names[i], sizeof(names[i]), "mcp-svc-%04u", i);
		order[i] = i;
	}
	for (i = ENTRIES - 1; i > 0; i--) {
		unsigned j, t;

		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t k;

	if (in < 0)
		return;		/* no ld.so.cache: the loader searches the default paths */
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die(to);
	while ((k = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)k) != k)
			die(to);
	close(in);
	close(out);
}

/* <root>/etc-<which>: what the re-executed child sees as /etc. A whole
 * directory is mounted, not /etc/passwd alone: a program on the host that
 * replaces /etc/passwd (useradd renames a new one into place) detaches a
 * bind mount of that file in every other namespace. */
static void make_etc(const char *root, const char *which, const char *passwd, size_t len)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], line[64];

	snprintf(dir, sizeof(dir), "%s/etc-%s", root, which);
	if (mkdir(dir, 0755) < 0 || chmod(dir, 0755) < 0)
		die(dir);
	snprintf(path, sizeof(path), "%s/nsswitch.conf", dir);
	snprintf(line, sizeof(line), "passwd: %s\n", which);
	write_text(path, line, strlen(line));
	snprintf(path, sizeof(path), "%s/ld.so.cache", dir);
	copy_file("/etc/ld.so.cache", path);
	if (passwd) {
		snprintf(path, sizeof(path), "%s/passwd", dir);
		write_text(path, passwd, len);
	}
}

/* The snapshot as sluiced would write it, the same lines as a passwd file
 * for the files baseline, and the two /etc directories. */
static void make_files(const char *root, char *nss_dir, size_t nss_len)
{
	static const char hdr[] = "# sluice nss snapshot v1\n";
	size_t cap = ENTRIES * 128 + 64, n = 0;
	char *text = malloc(cap), path[PATH_MAX];
	unsigned i;

	if (!text)
		die("malloc");
	n += (size_t)snprintf(text + n, cap - n, "%s", hdr);
	for (i = 0; i < ENTRIES; i++)
		n += (size_t)snprintf(text + n, cap - n,
				      "%s:x:%u:%u:sluice service identity:/nonexistent:/usr/sbin/nologin\n",
				      names[i], 100000 + i, 100000 + i);
	snprintf(path, sizeof(path), "%s/run", root);
	if (mkdir(path, 0755) < 0 || chmod(path, 0755) < 0)
		die(path);
	snprintf(nss_dir, nss_len, "%s/run/nss", root);
	if (mkdir(nss_dir, 0755) < 0 || chmod(nss_dir, 0755) < 0)
		die(nss_dir);
	snprintf(path, sizeof(path), "%s/passwd", nss_dir);
	write_text(path, text, n);
	snprintf(path, sizeof(path), "%s/passwd.files", root);
	write_text(path, text + strlen(hdr), n - strlen(hdr));
	make_etc(root, "files", text + strlen(hdr), n - strlen(hdr));
	make_etc(root, "sluice", NULL, 0);
	free(text);
}

static int module_loop(unsigned n, double *us)
{
	char buf[1024];
	struct passwd pw;
	double t0 = now_us();
	unsigned i;
	int err;

	for (i = 0; i < n; i++) {
		const char *name = names[order[i % ENTRIES]];

		if (_nss_sluice_getpwnam_r(name, &pw, buf, sizeof(buf), &err) != NSS_STATUS_SUCCESS ||
		    strcmp(pw.pw_name, name) != 0) {
			fprintf(stderr, "_nss_sluice_getpwnam_r(%s) failed\n", name);
			return -1;
		}
	}
	*us = (now_us() - t0) / n;
	return 0;
}

/* glibc's nss_files getpwnam_r: open, scan with the passwd parser, close. */
static int scan_loop(const char *file, unsigned n, double *us)
{
	char buf[1024];
	struct passwd pw, *res;
	double t0 = now_us();
	unsigned i;

	for (i = 0; i < n; i++) {
		const char *name = names[order[i % ENTRIES]];
		FILE *f = fopen(file, "rce");
		int found = 0;

		if (!f)
			return -1;
		while (fgetpwent_r(f, &pw, buf, sizeof(buf), &res) == 0)
			if (strcmp(pw.pw_name, name) == 0) {
				found = 1;
				break;
			}
		fclose(f);
		if (!found) {
			fprintf(stderr, "%s not found in %s\n", name, file);
			return -1;
		}
	}
	*us = (now_us() - t0) / n;
	return 0;
}

/* In the re-executed child: getpwnam_r through glibc, whatever
 * /etc/nsswitch.conf says there. Prints µs per lookup. */
static int glibc_run(unsigned n)
{
	char buf[1024];
	struct passwd pw, *res;
	double t0;
	unsigned i;

	/* The first call loads nsswitch.conf and the module. */
	if (getpwnam_r(names[0], &pw, buf, sizeof(buf), &res) != 0 || !res) {
		fprintf(stderr, "getpwnam_r(%s) through glibc found nothing\n", names[0]);
		return 1;
	}
	t0 = now_us();
	for (i = 0; i < n; i++) {
		const char *name = names[order[i % ENTRIES]];

		int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);

		if (r != 0 || !res || strcmp(pw.pw_name, name) != 0) {
			fprintf(stderr, "getpwnam_r(%s) through glibc (%s): %s\n", name,
				getenv("NSS_LOOKUP_PATH"), r ? strerror(r) : "not found");
			return 1;
		}
	}
	printf("%.4f\n", (now_us() - t0) / n);
	return 0;
}

/* A child in its own mount namespace, <root>/etc-<which> over /etc,
 * re-executing this program so that LD_LIBRARY_PATH is seen by the
 * dynamic loader. */
static int glibc_loop(const char *which, const char *root, const char *nss_dir, const char *moddir,
		      unsigned n, double *us)
{
	char etc[PATH_MAX], arg[32], out[64] = "";
	int p[2], status;
	ssize_t k;
	pid_t pid;

	snprintf(etc, sizeof(etc), "%s/etc-%s", root, which);
	snprintf(arg, sizeof(arg), "%u", n);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(etc, "/etc", NULL, MS_BIND, NULL) < 0)
			_exit(3);
		if (dup2(p[1], STDOUT_FILENO) < 0 || setenv("LD_LIBRARY_PATH", moddir, 1) < 0 ||
		    setenv("SLUICE_NSS_DIR", nss_dir, 1) < 0 || setenv("NSS_LOOKUP_PATH", which, 1) < 0)
			_exit(3);
		execl("/proc/self/exe", "nss_lookup", "--glibc-run", arg, (char *)NULL);
		_exit(3);
	}
	close(p[1]);
	k = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || k <= 0)
		return WIFEXITED(status) && WEXITSTATUS(status) == 3 ? -2 : -1;
	*us = strtod(out, NULL);
	return 0;
}

static void remove_tree(const char *root, const char *nss_dir)
{
	static const char *const files[] = { "passwd.files", "etc-files/nsswitch.conf", "etc-files/ld.so.cache",
					     "etc-files/passwd", "etc-sluice/nsswitch.conf", "etc-sluice/ld.so.cache" };
	char p[PATH_MAX];
	size_t i;

	snprintf(p, sizeof(p), "%s/passwd", nss_dir);
	unlink(p);
	rmdir(nss_dir);
	snprintf(p, sizeof(p), "%s/run", root);
	rmdir(p);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", root, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/etc-files", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/etc-sluice", root);
	rmdir(p);
	rmdir(root);
}

int main(int argc, char **argv)
{
	const char *module = "nss/.libs/libnss_sluice.so.2";
	char root[] = "/tmp/sluice-nss-bench-XXXXXX", nss_dir[256], moddir[PATH_MAX], files[256];
	double mod[ROUNDS], scan[ROUNDS], gs[ROUNDS], gf[ROUNDS];
	double m_mod, m_scan, m_gs = 0, m_gf = 0, base;
	unsigned n = 20000, r;
	int i, glibc = 0, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--glibc-run") == 0 && i + 1 < argc) {
			/* Re-executed by glibc_loop: same names, same order. */
			make_names();
			return glibc_run((unsigned)strtoul(argv[i + 1], NULL, 10));
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			n = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--module") == 0 && i + 1 < argc) {
			module = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [-n N] [--module PATH]\n", argv[0]);
			return 2;
		}
	}
	if (n == 0)
		n = 20000;
	if (!mkdtemp(root) || chmod(root, 0755) < 0)
		die("mkdtemp");
	make_names();
	make_files(root, nss_dir, sizeof(nss_dir));
	snprintf(files, sizeof(files), "%s/passwd.files", root);
	if (setenv("SLUICE_NSS_DIR", nss_dir, 1) < 0)
		die("setenv");

	if (geteuid() == 0 && access(module, R_OK) == 0 && realpath(module, moddir)) {
		char *slash = strrchr(moddir, '/');

		*slash = '\0';
		glibc = access("/var/run/nscd/socket", F_OK) != 0;
		if (!glibc)
			fprintf(stderr, "nscd is running: the glibc rows are left out\n");
	} else {
		fprintf(stderr, "not root or %s not found: the glibc rows are left out\n", module);
	}

	for (r = 0; r < ROUNDS; r++) {
		if (module_loop(n, &mod[r]) < 0 || scan_loop(files, n / 10 ? n / 10 : 1, &scan[r]) < 0) {
			rc = 2;
			goto out;
		}
		if (glibc) {
			int a = glibc_loop("sluice", root, nss_dir, moddir, n, &gs[r]);
			int b = a == 0 ? glibc_loop("files", root, nss_dir, moddir, n / 10 ? n / 10 : 1, &gf[r]) : a;

			if (a == -2 || b == -2) {
				fprintf(stderr, "cannot make a mount namespace: the glibc rows are left out\n");
				glibc = 0;
			} else if (a < 0 || b < 0) {
				rc = 2;
				goto out;
			}
		}
	}
	m_mod = median(mod, ROUNDS);
	m_scan = median(scan, ROUNDS);
	if (glibc) {
		m_gs = median(gs, ROUNDS);
		m_gf = median(gf, ROUNDS);
	}

	/* The baseline is glibc's own files module when it could be run, else
	 * the scan that stands in for it (slower: fgetpwent_r is not the
	 * files module's parser). */
	base = glibc ? m_gf : m_scan;
	printf("getpwnam_r, %d entries, %u lookups per round (files: %u), median of %d rounds\n\n", ENTRIES,
	       n, n / 10 ? n / 10 : 1, ROUNDS);
	printf("| path | µs per lookup | vs %s | target ≤ %.0f µs |\n|---|---|---|---|\n",
	       glibc ? "glibc → files" : "fgetpwent_r scan", TARGET_US);
	if (glibc) {
		printf("| getpwnam_r → glibc → sluice | %.3f | %.4f× | %s |\n", m_gs, m_gs / base,
		       m_gs <= TARGET_US ? "ok" : "MISSED");
		printf("| getpwnam_r → glibc → files | %.3f | 1 | |\n", m_gf);
	}
	printf("| _nss_sluice_getpwnam_r, called directly | %.3f | %.4f× | %s |\n", m_mod, m_mod / base,
	       m_mod <= TARGET_US ? "ok" : "MISSED");
	printf("| fopen + fgetpwent_r scan + fclose | %.3f | %.4f× | |\n", m_scan, m_scan / base);
	rc = m_mod > TARGET_US || (glibc && m_gs > TARGET_US);
out:
	remove_tree(root, nss_dir);
	return rc;
}
