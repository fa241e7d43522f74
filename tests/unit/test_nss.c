/* libnss_sluice: the _nss_sluice_* entry points called as glibc calls them,
 * against snapshot files written to a private SLUICE_NSS_DIR: lookups by
 * name and id, enumeration, initgroups_dyn, glibc's buffer contract
 * (ERANGE, the cursor not moving), bad, truncated, corrupted and oversized
 * files, missing and untrusted files, and re-reading a replaced file. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nss/nss_sluice.h"
#include "nss/snapshot.h"
#include "tests/unit/nss_testdir.h"

static struct nss_testdir dir;

#define HDR "# sluice nss snapshot v1\n"
#define PW_ORDERS "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin\n"
#define PW_BILLING "mcp-billing:x:61002:61002:sluice service identity:/var/lib/billing:/usr/sbin/nologin\n"
#define PW_ETL "etl_1.x-y$:x:61003:61003::/nonexistent:/bin/false\n"
#define PASSWD HDR PW_ORDERS PW_BILLING PW_ETL

#define GROUP HDR \
	"mcp-orders:x:61001:\n" \
	"mcp-billing:x:61002:\n" \
	"idp-data-readers:x:880001:mcp-billing,mcp-orders,sluicet-a\n" \
	"idp-orders-team:x:880002:mcp-orders\n" \
	"idp-empty:x:880003:\n" \
	"idp-billing:x:880004:mcp-billing\n"

static void write_passwd(const char *text)
{
	assert_int_equal(nss_testdir_writes(&dir, "passwd", text), 0);
}

static void write_group(const char *text)
{
	assert_int_equal(nss_testdir_writes(&dir, "group", text), 0);
}

static int setup_files(void **state)
{
	write_passwd(PASSWD);
	write_group(GROUP);
	return 0;
}

static enum nss_status pwnam(const char *name, struct passwd *pw, char *buf, size_t len, int *err)
{
	*err = 0;
	return _nss_sluice_getpwnam_r(name, pw, buf, len, err);
}

static enum nss_status grnam(const char *name, struct group *gr, char *buf, size_t len, int *err)
{
	*err = 0;
	return _nss_sluice_getgrnam_r(name, gr, buf, len, err);
}

static void assert_pw(const struct passwd *pw, const char *name, uid_t uid, gid_t gid, const char *gecos,
		      const char *home, const char *shell)
{
	assert_string_equal(pw->pw_name, name);
	assert_string_equal(pw->pw_passwd, "x");
	assert_int_equal(pw->pw_uid, uid);
	assert_int_equal(pw->pw_gid, gid);
	assert_string_equal(pw->pw_gecos, gecos);
	assert_string_equal(pw->pw_dir, home);
	assert_string_equal(pw->pw_shell, shell);
}

static size_t count_mem(char **mem)
{
	size_t n = 0;

	while (mem[n])
		n++;
	return n;
}

/* --- lookups ------------------------------------------------------------------------ */

static void pw_lookups(void **state)
{
	struct passwd pw;
	char buf[1024];
	int err;

	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_pw(&pw, "mcp-orders", 61001, 61001, "sluice service identity", "/nonexistent", "/usr/sbin/nologin");
	assert_int_equal(pwnam("etl_1.x-y$", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_pw(&pw, "etl_1.x-y$", 61003, 61003, "", "/nonexistent", "/bin/false");

	err = 0;
	assert_int_equal(_nss_sluice_getpwuid_r(61002, &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_pw(&pw, "mcp-billing", 61002, 61002, "sluice service identity", "/var/lib/billing",
		  "/usr/sbin/nologin");

	assert_int_equal(pwnam("root", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(err, ENOENT);
	assert_int_equal(pwnam("mcp-order", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(pwnam("", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(_nss_sluice_getpwuid_r(0, &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(_nss_sluice_getpwuid_r(61004, &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
}

static void gr_lookups(void **state)
{
	struct group gr;
	char buf[1024];
	int err;

	assert_int_equal(grnam("idp-data-readers", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(gr.gr_name, "idp-data-readers");
	assert_string_equal(gr.gr_passwd, "x");
	assert_int_equal(gr.gr_gid, 880001);
	assert_int_equal(count_mem(gr.gr_mem), 3);
	assert_string_equal(gr.gr_mem[0], "mcp-billing");
	assert_string_equal(gr.gr_mem[1], "mcp-orders");
	assert_string_equal(gr.gr_mem[2], "sluicet-a");

	err = 0;
	assert_int_equal(_nss_sluice_getgrgid_r(880003, &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(gr.gr_name, "idp-empty");
	assert_int_equal(count_mem(gr.gr_mem), 0);
	assert_int_equal(_nss_sluice_getgrgid_r(61001, &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(gr.gr_name, "mcp-orders");

	assert_int_equal(grnam("data-readers", &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(err, ENOENT);
	assert_int_equal(_nss_sluice_getgrgid_r(880005, &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
}

/* glibc's files module answers with the first line of a name or id. */
static void duplicates_first_wins(void **state)
{
	struct passwd pw;
	char buf[512];
	int err = 0;

	write_passwd(HDR "dup:x:70001:70001:first:/a:/bin/false\n"
		     "dup:x:70002:70002:second:/b:/bin/false\n"
		     "other:x:70001:70001:third:/c:/bin/false\n");
	assert_int_equal(pwnam("dup", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "first");
	assert_int_equal(_nss_sluice_getpwuid_r(70001, &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "first");
	assert_int_equal(_nss_sluice_getpwuid_r(70002, &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "second");
}

/* --- enumeration ------------------------------------------------------------------------ */

static void pw_enumeration(void **state)
{
	static const char *const want[] = { "mcp-orders", "mcp-billing", "etl_1.x-y$" };
	struct passwd pw;
	char buf[512];
	int err = 0, round;
	size_t i;

	for (round = 0; round < 2; round++) {
		assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
		for (i = 0; i < 3; i++) {
			assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
			assert_string_equal(pw.pw_name, want[i]);
		}
		assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
		assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
		assert_int_equal(_nss_sluice_endpwent(), NSS_STATUS_SUCCESS);
	}
	/* Without setpwent (a caller that skips it): starts at the top. */
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "mcp-orders");
	/* setpwent rewinds. */
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "mcp-orders");
	_nss_sluice_endpwent();
}

static void gr_enumeration(void **state)
{
	static const char *const want[] = { "mcp-orders", "mcp-billing", "idp-data-readers",
					    "idp-orders-team", "idp-empty", "idp-billing" };
	struct group gr;
	char buf[512];
	int err = 0;
	size_t i;

	assert_int_equal(_nss_sluice_setgrent(), NSS_STATUS_SUCCESS);
	for (i = 0; i < 6; i++) {
		assert_int_equal(_nss_sluice_getgrent_r(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
		assert_string_equal(gr.gr_name, want[i]);
	}
	assert_int_equal(_nss_sluice_getgrent_r(&gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(_nss_sluice_endgrent(), NSS_STATUS_SUCCESS);
}

/* An enumeration goes on over the content it started with when the file
 * is replaced under it; the next setpwent sees the new one. */
static void enumeration_pinned(void **state)
{
	struct passwd pw;
	char buf[512];
	int err = 0;

	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "mcp-orders");
	write_passwd(HDR "newcomer:x:62000:62000::/nonexistent:/usr/sbin/nologin\n");
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "mcp-billing");
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "etl_1.x-y$");
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	/* Lookups already see the new file. */
	assert_int_equal(pwnam("newcomer", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "newcomer");
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	_nss_sluice_endpwent();
}

/* --- glibc's buffer contract ------------------------------------------------------------ */

/* Every buffer shorter than the entry needs gives TRYAGAIN/ERANGE and
 * writes nothing past its end (the bytes after it are checked); the exact
 * size succeeds. Buffers start misaligned on purpose for gr_mem. */
static void tiny_buffers_lookup(void **state)
{
	size_t need_pw = sizeof("mcp-orders") + sizeof("x") + sizeof("sluice service identity") +
			 sizeof("/nonexistent") + sizeof("/usr/sbin/nologin");
	char big[2048];
	struct passwd pw;
	struct group gr;
	size_t len, off;
	int err;

	for (len = 0; len < need_pw; len++) {
		memset(big, 0x5a, sizeof(big));
		assert_int_equal(pwnam("mcp-orders", &pw, big, len, &err), NSS_STATUS_TRYAGAIN);
		assert_int_equal(err, ERANGE);
		assert_int_equal((unsigned char)big[len], 0x5a);
	}
	assert_int_equal(pwnam("mcp-orders", &pw, big, need_pw, &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_shell, "/usr/sbin/nologin");

	for (off = 0; off < sizeof(char *); off++) {
		size_t need = 0;

		for (len = 0; len < 256; len++) {
			enum nss_status st;

			memset(big, 0x5a, sizeof(big));
			st = grnam("idp-data-readers", &gr, big + off, len, &err);
			assert_int_equal((unsigned char)big[off + len], 0x5a);
			if (st == NSS_STATUS_SUCCESS) {
				need = len;
				break;
			}
			assert_int_equal(st, NSS_STATUS_TRYAGAIN);
			assert_int_equal(err, ERANGE);
		}
		assert_true(need > 0);
		assert_int_equal((uintptr_t)gr.gr_mem % __alignof__(char *), 0);
		assert_int_equal(count_mem(gr.gr_mem), 3);
		assert_string_equal(gr.gr_mem[2], "sluicet-a");
	}
}

/* TRYAGAIN in an enumeration leaves the cursor: glibc retries the same
 * call with a bigger buffer and must get the entry it could not take. */
static void tiny_buffers_enumeration(void **state)
{
	struct passwd pw;
	struct group gr;
	char buf[512];
	int err = 0, i;

	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	for (i = 0; i < 3; i++) {
		err = 0;
		assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, 8, &err), NSS_STATUS_TRYAGAIN);
		assert_int_equal(err, ERANGE);
	}
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_name, "mcp-billing");
	_nss_sluice_endpwent();

	assert_int_equal(_nss_sluice_setgrent(), NSS_STATUS_SUCCESS);
	err = 0;
	assert_int_equal(_nss_sluice_getgrent_r(&gr, buf, 1, &err), NSS_STATUS_TRYAGAIN);
	assert_int_equal(err, ERANGE);
	assert_int_equal(_nss_sluice_getgrent_r(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(gr.gr_name, "mcp-orders");
	_nss_sluice_endgrent();
}

/* --- initgroups --------------------------------------------------------------------------- */

static void initgroups_adds_memberships(void **state)
{
	gid_t *groups = malloc(sizeof(gid_t));
	long start = 1, size = 1;
	int err = 0;

	assert_non_null(groups);
	groups[0] = 61001;
	/* The primary group (61001) is not repeated; the array grows. */
	assert_int_equal(_nss_sluice_initgroups_dyn("mcp-orders", 61001, &start, &size, &groups, 0, &err),
			 NSS_STATUS_SUCCESS);
	assert_int_equal(start, 3);
	assert_true(size >= 3);
	assert_int_equal(groups[0], 61001);
	assert_int_equal(groups[1], 880001);
	assert_int_equal(groups[2], 880002);

	/* Gids already there (another module's) are not added twice. */
	assert_int_equal(_nss_sluice_initgroups_dyn("mcp-orders", 61001, &start, &size, &groups, 0, &err),
			 NSS_STATUS_NOTFOUND);
	assert_int_equal(start, 3);
	free(groups);
}

static void initgroups_limit_and_none(void **state)
{
	gid_t *groups = calloc(2, sizeof(gid_t));
	long start = 1, size = 2;
	int err = 0;

	assert_non_null(groups);
	groups[0] = 100;
	/* limit 2: one slot left, two groups to add; the array never grows. */
	assert_int_equal(_nss_sluice_initgroups_dyn("mcp-billing", 100, &start, &size, &groups, 2, &err),
			 NSS_STATUS_SUCCESS);
	assert_int_equal(start, 2);
	assert_int_equal(size, 2);
	assert_int_equal(groups[1], 880001);

	start = 1;
	assert_int_equal(_nss_sluice_initgroups_dyn("nobody-here", 100, &start, &size, &groups, 0, &err),
			 NSS_STATUS_NOTFOUND);
	assert_int_equal(start, 1);
	/* A user whose only group is its primary one. */
	assert_int_equal(_nss_sluice_initgroups_dyn("sluicet-a", 880001, &start, &size, &groups, 0, &err),
			 NSS_STATUS_NOTFOUND);
	assert_int_equal(start, 1);
	free(groups);
}

/* --- bad input ------------------------------------------------------------------------------- */

static void bad_lines_skipped(void **state)
{
	char longline[SNAP_LINE_MAX + 64];
	char text[16384];
	struct passwd pw;
	struct group gr;
	char buf[8192];
	int err = 0, n = 0;
	size_t len;

	/* A valid line except for its length: 4097 bytes without '\n'. */
	len = (size_t)snprintf(longline, sizeof(longline), "toolong:x:63000:63000:");
	memset(longline + len, 'g', SNAP_LINE_MAX + 1 - len - strlen(":/h:/s"));
	memcpy(longline + SNAP_LINE_MAX + 1 - strlen(":/h:/s"), ":/h:/s", sizeof(":/h:/s"));
	assert_int_equal(strlen(longline), SNAP_LINE_MAX + 1);

	snprintf(text, sizeof(text),
		 HDR
		 "good1:x:63001:63001:ok:/h:/s\n"
		 "\n"
		 "# a comment:x:1:1::/:/\n"
		 "short:x:63002:63002:/h:/s\n"			/* 6 fields */
		 "long:x:63003:63003:g:/h:/s:extra\n"		/* 8 fields */
		 "Upper:x:63004:63004::/h:/s\n"
		 "1digit:x:63005:63005::/h:/s\n"
		 "-dash:x:63006:63006::/h:/s\n"
		 "abcdefghijklmnopqrstuvwxyz0123456:x:63007:63007::/h:/s\n"	/* 33 bytes */
		 "sp ace:x:63008:63008::/h:/s\n"
		 "pw:secret:63009:63009::/h:/s\n"
		 "pwempty::63010:63010::/h:/s\n"
		 "root2:x:0:63011::/h:/s\n"
		 "rootgid:x:63012:0::/h:/s\n"
		 "neg:x:-1:63013::/h:/s\n"
		 "max:x:4294967295:63014::/h:/s\n"
		 "over:x:4294967296:63015::/h:/s\n"
		 "huge:x:99999999999999999999:63016::/h:/s\n"
		 "lead:x:063017:63017::/h:/s\n"
		 "plus:x:+63018:63018::/h:/s\n"
		 "alpha:x:63019a:63019::/h:/s\n"
		 "emptyuid:x::63020::/h:/s\n"
		 "nohome:x:63021:63021:::/s\n"
		 "relhome:x:63022:63022::h:/s\n"
		 "noshell:x:63023:63023::/h:\n"
		 "ctl:x:63024:63024:a\tb:/h:/s\n"
		 "crlf:x:63025:63025::/h:/s\r\n"
		 "del:x:63026:63026:\x7f:/h:/s\n"
		 "%s\n"
		 "good2:x:63027:63027:g,with,commas:/h:/s\n"
		 ":x:63028:63028::/h:/s\n"
		 "good3:x:4294967294:4294967294:max id:/h:/s\n",
		 longline);
	write_passwd(text);

	assert_int_equal(pwnam("good1", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(pwnam("good2", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "g,with,commas");
	assert_int_equal(pwnam("good3", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(pw.pw_uid, 4294967294u);
	assert_int_equal(pwnam("toolong", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(pwnam("root2", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(pwnam("pw", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(pwnam("crlf", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(_nss_sluice_getpwuid_r(0, &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);

	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
	while (_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS) {
		assert_true(strncmp(pw.pw_name, "good", 4) == 0);
		n++;
	}
	_nss_sluice_endpwent();
	assert_int_equal(n, 3);

	write_group(HDR
		    "g-ok:x:880100:a,b_c,d.e-f$\n"
		    "g-emptymember:x:880101:a,,b\n"
		    "g-trailing:x:880102:a,\n"
		    "g-leading:x:880103:,a\n"
		    "g-plus:x:880104:a,+nis\n"
		    "g-minus:x:880109:-a\n"
		    "g-blank:x:880110:a b\n"
		    "g-ctl:x:880111:a\x01\n"
		    "g-ok-local:x:880112:Alice.B,svc@corp,x$\n"
		    "g-pw:pw:880105:a\n"
		    "g-gid0:x:0:a\n"
		    "g-fields:x:880106\n"
		    "g-fields5:x:880107:a:b\n"
		    "g-ok2:x:880108:\n");
	assert_int_equal(grnam("g-ok", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(count_mem(gr.gr_mem), 3);
	assert_string_equal(gr.gr_mem[1], "b_c");
	assert_string_equal(gr.gr_mem[2], "d.e-f$");
	assert_int_equal(grnam("g-ok2", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	/* Members are the host's account names: its rules, not the contract's. */
	assert_int_equal(grnam("g-ok-local", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(count_mem(gr.gr_mem), 3);
	assert_string_equal(gr.gr_mem[0], "Alice.B");
	assert_string_equal(gr.gr_mem[1], "svc@corp");
	n = 0;
	assert_int_equal(_nss_sluice_setgrent(), NSS_STATUS_SUCCESS);
	while (_nss_sluice_getgrent_r(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS) {
		assert_true(strncmp(gr.gr_name, "g-ok", 4) == 0);
		n++;
	}
	_nss_sluice_endgrent();
	assert_int_equal(n, 3);
}

/* A NUL inside a line must not cut it into something valid. */
static void nul_in_line(void **state)
{
	static const char text[] = HDR "nul:x:63100:63100::/h:/s\0junk\n" "ok:x:63101:63101::/h:/s\n";
	struct passwd pw;
	char buf[512];
	int err = 0;

	assert_int_equal(nss_testdir_write(&dir, "passwd", text, sizeof(text) - 1, 0644), 0);
	assert_int_equal(pwnam("nul", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	assert_int_equal(pwnam("ok", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
}

/* Every prefix of a good file (a writer cut off, a short read): no entry is
 * ever served half, each one served is exactly as in the whole file. */
static void truncated_files(void **state)
{
	static const char full[] = PASSWD;
	struct passwd pw;
	char buf[512];
	size_t len;
	int err = 0;

	for (len = 0; len <= sizeof(full) - 1; len++) {
		int n = 0;

		assert_int_equal(nss_testdir_write(&dir, "passwd", full, len, 0644), 0);
		assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_SUCCESS);
		while (_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS) {
			char line[256];

			snprintf(line, sizeof(line), "%s:x:%u:%u:%s:%s:%s\n", pw.pw_name, pw.pw_uid, pw.pw_gid,
				 pw.pw_gecos, pw.pw_dir, pw.pw_shell);
			assert_non_null(strstr(full, line));
			/* ... and the whole line was in the prefix. */
			assert_true((size_t)(strstr(full, line) - full) + strlen(line) <= len);
			n++;
		}
		_nss_sluice_endpwent();
		assert_true(n <= 3);
		if (len == sizeof(full) - 1)
			assert_int_equal(n, 3);
	}
}

static uint32_t rnd_state = 0x12345678;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static void assert_served_valid(const struct snap *s)
{
	uint32_t i;

	for (i = 0; i < s->n; i++) {
		if (s->kind == SNAP_PASSWD) {
			const struct snap_pw *e = &s->pw[i];

			assert_true(snap_name_valid(e->name, strlen(e->name)));
			assert_true(e->uid != 0 && e->gid != 0 && e->uid != UINT32_MAX);
			assert_int_equal(e->dir[0], '/');
			assert_int_equal(e->shell[0], '/');
			assert_null(strchr(e->gecos, ':'));
		} else {
			const struct snap_gr *e = &s->gr[i];
			const char *m = e->mem;
			uint32_t k;

			assert_true(snap_name_valid(e->name, strlen(e->name)));
			assert_true(e->gid != 0);
			for (k = 0; k < e->nmem; k++) {
				size_t len = strlen(m), c;

				assert_true(len > 0 && len < SNAP_MEMBER_MAX && m[0] != '+' && m[0] != '-');
				for (c = 0; c < len; c++)
					assert_true(m[c] > ' ' && m[c] <= '~' && m[c] != ':' && m[c] != ',');
				m += len + 1;
			}
		}
	}
}

/* Random byte changes, insertions of separators and cuts over good files:
 * the parser never reads outside the buffer (ASan in the sanitizer build),
 * and every entry it keeps is one the contract allows. */
static void corrupted_files(void **state)
{
	static const char *const seeds[] = { PASSWD, GROUP };
	static const char noise[] = ":,\n\r\t\0#$xX09/ \xff";
	int kind, iter;

	for (kind = 0; kind < 2; kind++) {
		size_t base = strlen(seeds[kind]);

		for (iter = 0; iter < 20000; iter++) {
			size_t len = base, flips = 1 + rnd() % 6, i;
			char *b = malloc(base + 1);
			struct snap s;

			assert_non_null(b);
			memcpy(b, seeds[kind], base);
			for (i = 0; i < flips; i++) {
				size_t at = rnd() % len;

				b[at] = rnd() % 2 ? noise[rnd() % (sizeof(noise) - 1)] : (char)rnd();
			}
			if (rnd() % 4 == 0)
				len = rnd() % (len + 1);
			assert_int_equal(snap_parse(&s, kind ? SNAP_GROUP : SNAP_PASSWD, b, len), 0);
			assert_served_valid(&s);
			snap_clear(&s);
		}
	}
	/* And a few through the module, file and all. */
	for (iter = 0; iter < 200; iter++) {
		char b[sizeof(GROUP)];
		struct group gr;
		char buf[1024];
		int err = 0;
		size_t i;

		memcpy(b, GROUP, sizeof(b));
		for (i = 0; i < 4; i++)
			b[rnd() % (sizeof(b) - 1)] = noise[rnd() % (sizeof(noise) - 1)];
		assert_int_equal(nss_testdir_write(&dir, "group", b, sizeof(b) - 1, 0644), 0);
		assert_int_equal(_nss_sluice_setgrent(), NSS_STATUS_SUCCESS);
		while (_nss_sluice_getgrent_r(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
			assert_true(gr.gr_gid != 0);
		_nss_sluice_endgrent();
	}
}

/* 16 MiB is read, one byte more is not (UNAVAIL, as if missing). */
static void oversized_file(void **state)
{
	char path[512];
	struct passwd pw;
	char buf[512];
	int fd, err;

	write_passwd(HDR PW_ORDERS);
	nss_testdir_path(&dir, "passwd", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* The rest is NUL bytes: one unterminated line, skipped. */
	assert_int_equal(ftruncate(fd, SNAP_FILE_MAX), 0);
	close(fd);
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);

	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)SNAP_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	err = 0;
	assert_int_equal(_nss_sluice_getpwuid_r(61001, &pw, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_UNAVAIL);
	_nss_sluice_endpwent();
}

/* --- missing and untrusted files ---------------------------------------------------------- */

static void assert_unavail(void)
{
	struct passwd pw;
	struct group gr;
	gid_t *groups = malloc(sizeof(gid_t));
	long start = 1, size = 1;
	char buf[512];
	int err;

	assert_non_null(groups);
	groups[0] = 1;
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	assert_int_equal(grnam("idp-data-readers", &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	err = 0;
	assert_int_equal(_nss_sluice_getgrgid_r(880001, &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	err = 0;
	assert_int_equal(_nss_sluice_initgroups_dyn("mcp-orders", 1, &start, &size, &groups, 0, &err),
			 NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	assert_int_equal(start, 1);
	free(groups);
	assert_int_equal(_nss_sluice_setpwent(), NSS_STATUS_UNAVAIL);
	err = 0;
	assert_int_equal(_nss_sluice_getpwent_r(&pw, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	assert_int_equal(err, ENOENT);
	_nss_sluice_endpwent();
	assert_int_equal(_nss_sluice_setgrent(), NSS_STATUS_UNAVAIL);
	_nss_sluice_endgrent();
}

static void assert_available(void)
{
	struct passwd pw;
	struct group gr;
	char buf[512];
	int err;

	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_int_equal(grnam("idp-data-readers", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
}

static void chmod_file(const char *name, mode_t mode)
{
	char p[512];

	nss_testdir_path(&dir, name, p, sizeof(p));
	assert_int_equal(chmod(p, mode), 0);
}

static void missing_files(void **state)
{
	char p[512];

	assert_available();
	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	nss_testdir_path(&dir, "group", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_unavail();
	setup_files(state);
	assert_available();
	/* The whole directory gone (agent never started). */
	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	unlink(p);
	nss_testdir_path(&dir, "group", p, sizeof(p));
	unlink(p);
	assert_int_equal(rmdir(dir.nss), 0);
	assert_unavail();
	assert_int_equal(mkdir(dir.nss, 0755), 0);
	assert_int_equal(chmod(dir.nss, 0755), 0);
	setup_files(state);
	assert_available();
}

/* A writable-by-others file is ignored even though it was trusted (and
 * cached) a moment before: the chmod changes its ctime, the next lookup
 * looks again and refuses it. */
static void untrusted_file_modes(void **state)
{
	assert_available();
	chmod_file("passwd", 0666);
	chmod_file("group", 0666);
	assert_unavail();
	chmod_file("passwd", 0664);
	chmod_file("group", 0664);
	assert_unavail();
	chmod_file("passwd", 0600);
	chmod_file("group", 0640);
	assert_available();
}

static void untrusted_dirs(void **state)
{
	/* The directories are checked when a file is read, so each change is
	 * followed by a fresh write. */
	assert_int_equal(chmod(dir.nss, 0777), 0);
	setup_files(state);
	assert_unavail();
	assert_int_equal(chmod(dir.nss, 0775), 0);
	setup_files(state);
	assert_unavail();
	assert_int_equal(chmod(dir.nss, 0755), 0);
	setup_files(state);
	assert_available();

	assert_int_equal(chmod(dir.run, 0777), 0);
	setup_files(state);
	assert_unavail();
	assert_int_equal(chmod(dir.run, 01777), 0);
	setup_files(state);
	assert_unavail();
	assert_int_equal(chmod(dir.run, 0755), 0);
	setup_files(state);
	assert_available();
}

/* Not a regular file where one is expected: a symbolic link (even to a
 * good file), a FIFO (which must not block), a directory. */
static void not_regular_files(void **state)
{
	char p[512], good[512];

	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	nss_testdir_path(&dir, "scratch", good, sizeof(good));
	assert_int_equal(nss_testdir_writes(&dir, "scratch", PASSWD), 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(good, p), 0);
	nss_testdir_path(&dir, "group", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_unavail();

	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	nss_testdir_path(&dir, "group", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_unavail();
	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	assert_int_equal(rmdir(p), 0);
	nss_testdir_path(&dir, "group", p, sizeof(p));
	assert_int_equal(rmdir(p), 0);
	unlink(good);
	setup_files(state);
	assert_available();
}

/* Ownership: root or the agent's user (the runtime dir's owner) only.
 * Needs root to hand files to other uids. */
static void untrusted_owners(void **state)
{
	char pw[512], gr[512];

	if (geteuid() != 0)
		skip();
	nss_testdir_path(&dir, "passwd", pw, sizeof(pw));
	nss_testdir_path(&dir, "group", gr, sizeof(gr));

	/* Runtime dir owned by 4242 ("sluice"): files of 4242 are fine. */
	assert_int_equal(chown(dir.run, 4242, 0), 0);
	assert_int_equal(chown(dir.nss, 4242, 4242), 0);
	setup_files(state);
	assert_int_equal(chown(pw, 4242, 4242), 0);
	assert_int_equal(chown(gr, 0, 0), 0);
	assert_available();

	/* A file of anyone else is not. */
	assert_int_equal(chown(pw, 4243, 4242), 0);
	assert_int_equal(chown(gr, 4243, 4242), 0);
	assert_unavail();

	/* Nor a directory of anyone else. */
	assert_int_equal(chown(dir.nss, 4243, 4242), 0);
	setup_files(state);
	assert_unavail();

	assert_int_equal(chown(dir.nss, 0, 0), 0);
	assert_int_equal(chown(dir.run, 0, 0), 0);
	setup_files(state);
	assert_available();
}

/* --- change detection ------------------------------------------------------------------- */

static void reread_on_change(void **state)
{
	char p[512];
	struct passwd pw;
	char buf[512];
	struct timespec ts[2];
	int fd, err;

	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	/* Renamed into place: a new inode. */
	write_passwd(HDR "mcp-orders:x:61001:61001:renamed:/nonexistent:/usr/sbin/nologin\n");
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "renamed");
	assert_int_equal(pwnam("mcp-billing", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);

	/* Rewritten in place, same size, same inode: mtime tells. */
	nss_testdir_path(&dir, "passwd", p, sizeof(p));
	fd = open(p, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "RENAMED", 7, strlen(HDR "mcp-orders:x:61001:61001:")), 7);
	ts[0].tv_sec = ts[1].tv_sec = 1000000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "RENAMED");

	/* Unchanged: the same content keeps coming from memory. */
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "RENAMED");

	/* Emptied: nothing found, and not unavailable. */
	write_passwd("");
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	write_passwd(HDR);
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	setup_files(state);
	assert_int_equal(pwnam("mcp-orders", &pw, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	assert_string_equal(pw.pw_gecos, "sluice service identity");
}

static void name_rules(void **state)
{
	assert_true(snap_name_valid("a", 1));
	assert_true(snap_name_valid("_a", 2));
	assert_true(snap_name_valid("a$", 2));
	assert_true(snap_name_valid("idp-data.readers_2", 18));
	assert_true(snap_name_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
	assert_false(snap_name_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
	assert_false(snap_name_valid("", 0));
	assert_false(snap_name_valid("$", 1));
	assert_false(snap_name_valid("a$b", 3));
	assert_false(snap_name_valid("a$$", 3));
	assert_false(snap_name_valid("0a", 2));
	assert_false(snap_name_valid(".a", 2));
	assert_false(snap_name_valid("aB", 2));
	assert_false(snap_name_valid("a b", 3));
	assert_false(snap_name_valid("a/b", 3));
	assert_false(snap_name_valid("\xc3\xa9t\xc3\xa9", 6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(name_rules),
		cmocka_unit_test_setup(pw_lookups, setup_files),
		cmocka_unit_test_setup(gr_lookups, setup_files),
		cmocka_unit_test_setup(duplicates_first_wins, setup_files),
		cmocka_unit_test_setup(pw_enumeration, setup_files),
		cmocka_unit_test_setup(gr_enumeration, setup_files),
		cmocka_unit_test_setup(enumeration_pinned, setup_files),
		cmocka_unit_test_setup(tiny_buffers_lookup, setup_files),
		cmocka_unit_test_setup(tiny_buffers_enumeration, setup_files),
		cmocka_unit_test_setup(initgroups_adds_memberships, setup_files),
		cmocka_unit_test_setup(initgroups_limit_and_none, setup_files),
		cmocka_unit_test_setup(bad_lines_skipped, setup_files),
		cmocka_unit_test_setup(nul_in_line, setup_files),
		cmocka_unit_test_setup(truncated_files, setup_files),
		cmocka_unit_test_setup(corrupted_files, setup_files),
		cmocka_unit_test_setup(oversized_file, setup_files),
		cmocka_unit_test_setup(missing_files, setup_files),
		cmocka_unit_test_setup(untrusted_file_modes, setup_files),
		cmocka_unit_test_setup(untrusted_dirs, setup_files),
		cmocka_unit_test_setup(not_regular_files, setup_files),
		cmocka_unit_test_setup(untrusted_owners, setup_files),
		cmocka_unit_test_setup(reread_on_change, setup_files),
	};
	int r;

	nss_testdir_create(&dir);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	nss_testdir_remove(&dir);
	return r;
}
