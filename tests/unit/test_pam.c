/* pam_sluice's pure parts: module arguments, the token_file= template, the
 * token file checks, the D-Bus error -> PAM code mapping and session ids. */
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
#include <unistd.h>
#include <cmocka.h>
#include <security/_pam_types.h>

#include "pam_module/agent_call.h"
#include "pam_module/args.h"
#include "pam_module/token_file.h"

/* Arguments. */

static void args_defaults(void **state)
{
	struct pam_sluice_args a;
	const char *bad = NULL;

	assert_int_equal(pam_sluice_args_parse(0, NULL, &a, &bad), 0);
	assert_false(a.use_first_pass);
	assert_false(a.try_first_pass);
	assert_false(a.debug);
	assert_null(a.token_file);
	assert_int_equal(a.timeout_s, PAM_SLUICE_TIMEOUT_DEFAULT);
	assert_null(bad);
}

static void args_all(void **state)
{
	const char *argv[] = { "try_first_pass", "debug", "token_file=/run/credentials/%u.service/token",
			       "timeout=3" };
	struct pam_sluice_args a;
	const char *bad = NULL;

	assert_int_equal(pam_sluice_args_parse(4, argv, &a, &bad), 0);
	assert_true(a.try_first_pass);
	assert_false(a.use_first_pass);
	assert_true(a.debug);
	assert_string_equal(a.token_file, "/run/credentials/%u.service/token");
	assert_int_equal(a.timeout_s, 3);
}

static void args_use_first_pass_wins(void **state)
{
	const char *argv[] = { "try_first_pass", "use_first_pass" };
	struct pam_sluice_args a;
	const char *bad = NULL;

	assert_int_equal(pam_sluice_args_parse(2, argv, &a, &bad), 0);
	assert_true(a.use_first_pass);
	assert_false(a.try_first_pass);
}

static void args_rejected(void **state)
{
	static const char *bad_args[] = {
		"use_authtok",		/* pam_unix's, not ours */
		"Debug",		/* case matters */
		"debug=1",		/* a flag takes no value */
		"token_file",		/* no value */
		"token_file=",		/* empty */
		"token_file=relative/%u", /* cwd-dependent */
		"token_file=/x/%x",	/* unknown escape */
		"token_file=/x/%",	/* dangling escape */
		"timeout=0",		/* unbounded wait is not a timeout */
		"timeout=301",		/* over the cap */
		"timeout=-1", "timeout=", "timeout=10s", "timeout= 5", "timeout=99999999999999999999",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_args); i++) {
		const char *argv[] = { "debug", bad_args[i] };
		struct pam_sluice_args a = { .timeout_s = 4242 };
		const char *bad = NULL;

		assert_int_equal(pam_sluice_args_parse(2, argv, &a, &bad), -EINVAL);
		assert_ptr_equal(bad, argv[1]);
		assert_int_equal(a.timeout_s, 4242); /* untouched */
	}
	/* A second token_file= would make the first one silently unused. */
	const char *twice[] = { "token_file=/a", "token_file=/b" };
	struct pam_sluice_args a;
	const char *bad = NULL;
	assert_int_equal(pam_sluice_args_parse(2, twice, &a, &bad), -EINVAL);
	assert_ptr_equal(bad, twice[1]);
}

/* token_file= templates. */

static void expand_ok(void **state)
{
	static const struct { const char *tmpl, *user, *out; } ok[] = {
		{ "/run/credentials/%u.service/token", "mcp-orders",
		  "/run/credentials/mcp-orders.service/token" },
		{ "/etc/sluice/tokens/%u", "svc.a_b-1", "/etc/sluice/tokens/svc.a_b-1" },
		{ "/t/%%u", "x", "/t/%u" },
		{ "/t/%u-%u", "ab", "/t/ab-ab" },
		{ "/fixed", "anything/goes-unused", "/fixed" },
		{ "/t/%u", "user@REALM", "/t/user@REALM" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char *p = NULL;

		assert_int_equal(pam_sluice_expand_path(ok[i].tmpl, ok[i].user, &p), 0);
		assert_string_equal(p, ok[i].out);
		free(p);
	}
}

static void expand_rejects_walking_users(void **state)
{
	static const char *bad_users[] = { "", ".", "..", "../root", "a/b", "/", "a\nb", "a\tb",
					   "\x7f" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_users); i++) {
		char *p = (char *)0x1;

		assert_int_equal(pam_sluice_expand_path("/t/%u/token", bad_users[i], &p), -EINVAL);
		assert_ptr_equal(p, (char *)0x1);
	}
	char long_user[PAM_SLUICE_USER_MAX + 2];
	char *p = NULL;
	memset(long_user, 'a', sizeof(long_user) - 1);
	long_user[sizeof(long_user) - 1] = '\0';
	assert_int_equal(pam_sluice_expand_path("/t/%u", long_user, &p), -EINVAL);
	long_user[PAM_SLUICE_USER_MAX] = '\0';
	assert_int_equal(pam_sluice_expand_path("/t/%u", long_user, &p), 0);
	free(p);
}

static void expand_caps_length(void **state)
{
	char user[PAM_SLUICE_USER_MAX + 1];
	char tmpl[64];
	char *p = NULL;

	memset(user, 'u', PAM_SLUICE_USER_MAX);
	user[PAM_SLUICE_USER_MAX] = '\0';
	/* 17 x 256 bytes > PAM_SLUICE_PATH_MAX. */
	snprintf(tmpl, sizeof(tmpl), "/%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u%%u");
	assert_int_equal(pam_sluice_expand_path(tmpl, user, &p), -ENAMETOOLONG);
	assert_null(p);
	assert_int_equal(pam_sluice_expand_path("relative", "u", &p), -EINVAL);
	assert_int_equal(pam_sluice_expand_path(NULL, "u", &p), -EINVAL);
}

/* Token files. */

struct tmp {
	char dir[64];
	char path[128];
};

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_pam.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/token", t->dir);
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	char p[160];

	unlink(t->path);
	snprintf(p, sizeof(p), "%s/link", t->dir);
	unlink(p);
	rmdir(t->dir);
	free(t);
	return 0;
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void read_ok(void **state)
{
	struct tmp *t = *state;
	static const struct { const char *content, *want; } cases[] = {
		{ "eyJ.a.b", "eyJ.a.b" },
		{ "eyJ.a.b\n", "eyJ.a.b" },
		{ "eyJ.a.b\r\n", "eyJ.a.b" },
		{ "eyJ.a.b\n\n\n", "eyJ.a.b" },
		{ "a b\nc\n", "a b\nc" }, /* only trailing newlines go */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *tok = NULL;
		const char *why = NULL;

		write_file(t->path, cases[i].content, strlen(cases[i].content), 0600);
		assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), 0);
		assert_string_equal(tok, cases[i].want);
		secret_free_str(tok);
	}
	/* Read-only for everyone is fine; writable by others is not. */
	char *tok = NULL;
	const char *why = NULL;
	write_file(t->path, "x", 1, 0444);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), 0);
	secret_free_str(tok);
}

static void read_size_cap(void **state)
{
	struct tmp *t = *state;
	char *big = malloc(PAM_SLUICE_TOKEN_MAX + 2);
	char *tok = NULL;
	const char *why = NULL;

	assert_non_null(big);
	memset(big, 'A', PAM_SLUICE_TOKEN_MAX + 1);
	big[PAM_SLUICE_TOKEN_MAX] = '\n';
	/* Exactly the cap, newline included: accepted. */
	write_file(t->path, big, PAM_SLUICE_TOKEN_MAX, 0600);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), 0);
	assert_int_equal(strlen(tok), PAM_SLUICE_TOKEN_MAX);
	secret_free_str(tok);
	tok = NULL;
	/* One byte over, even if it is the newline: refused. */
	write_file(t->path, big, PAM_SLUICE_TOKEN_MAX + 1, 0600);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -EFBIG);
	assert_null(tok);
	assert_string_equal(why, "larger than 16 KiB");
	free(big);
}

static void read_refused(void **state)
{
	struct tmp *t = *state;
	char link[160];
	char *tok = NULL;
	const char *why = NULL;

	write_file(t->path, "tok", 3, 0620);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -EPERM);
	assert_string_equal(why, "group- or world-writable");
	write_file(t->path, "tok", 3, 0602);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -EPERM);

	write_file(t->path, "", 0, 0600);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -ENODATA);
	write_file(t->path, "\n\r\n", 3, 0600);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -ENODATA);
	write_file(t->path, "ab\0cd", 5, 0600);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -EINVAL);
	assert_string_equal(why, "contains a NUL byte");

	/* A symlink as the last component, even to a good file. */
	write_file(t->path, "tok", 3, 0600);
	snprintf(link, sizeof(link), "%s/link", t->dir);
	assert_int_equal(symlink(t->path, link), 0);
	assert_int_equal(pam_sluice_token_file_read(link, (uid_t)-1, &tok, &why), -ELOOP);
	assert_string_equal(why, "a symbolic link");
	unlink(link);

	/* A FIFO must not block, a directory is not a token. */
	assert_int_equal(mkfifo(link, 0600), 0);
	assert_int_equal(pam_sluice_token_file_read(link, (uid_t)-1, &tok, &why), -EINVAL);
	assert_string_equal(why, "not a regular file");
	unlink(link);
	assert_int_equal(pam_sluice_token_file_read(t->dir, (uid_t)-1, &tok, &why), -EINVAL);

	assert_int_equal(pam_sluice_token_file_read("/nonexistent/sluice/token", (uid_t)-1, &tok,
						    &why),
			 -ENOENT);
	assert_null(tok);
}

static void read_owner(void **state)
{
	struct tmp *t = *state;
	char *tok = NULL;
	const char *why = NULL;

	if (geteuid() != 0)
		skip(); /* chown to another uid needs root */
	write_file(t->path, "tok", 3, 0644);
	/* Owned by a third user: refused, unless that user is the PAM user. */
	assert_int_equal(chown(t->path, 4242, 4242), 0);
	assert_int_equal(pam_sluice_token_file_read(t->path, (uid_t)-1, &tok, &why), -EPERM);
	assert_string_equal(why, "owned by another user");
	assert_int_equal(pam_sluice_token_file_read(t->path, 4242, &tok, &why), 0);
	assert_string_equal(tok, "tok");
	secret_free_str(tok);
}

/* Error mapping. */

static int code_for(enum pam_sluice_step step, const char *name, const char *message)
{
	struct dbusc_error e = { 0 };
	int code;

	(void)dbusc_error_set(&e, name, message);
	code = pam_sluice_pam_code(step, &e);
	dbusc_error_clear(&e);
	return code;
}

#define E(x) "org.sluice.Agent1.Error." x

static void mapping_auth(void **state)
{
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("TokenRejected"), "token rejected: expired"),
			 PAM_AUTH_ERR);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("Denied"), "x"), PAM_AUTH_ERR);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("NotFound"), "no binding"), PAM_USER_UNKNOWN);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("Unavailable"), "no keys"), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("Failed"), "x"), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, E("SomethingNew"), "x"), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, DBUS_ERROR_SERVICE_UNKNOWN, "x"),
			 PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, DBUS_ERROR_NO_REPLY, "x"), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, DBUS_ERROR_ACCESS_DENIED, "x"),
			 PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_AUTH, DBUS_ERROR_UNKNOWN_METHOD, "x"),
			 PAM_AUTHINFO_UNAVAIL);
	/* Never success for a failed call, whatever it was. */
	for (int s = PAM_SLUICE_AUTH; s <= PAM_SLUICE_OPEN; s++)
		assert_int_not_equal(code_for((enum pam_sluice_step)s, "", ""), PAM_SUCCESS);
}

static void mapping_account_session(void **state)
{
	assert_int_equal(code_for(PAM_SLUICE_ACCOUNT, E("Denied"), "binding removed"),
			 PAM_PERM_DENIED);
	assert_int_equal(code_for(PAM_SLUICE_ACCOUNT, E("NotFound"), "x"), PAM_USER_UNKNOWN);
	assert_int_equal(code_for(PAM_SLUICE_ACCOUNT, DBUS_ERROR_NAME_HAS_NO_OWNER, "x"),
			 PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_OPEN, E("TokenRejected"), "x"), PAM_AUTH_ERR);
	assert_int_equal(code_for(PAM_SLUICE_OPEN, E("LimitExceeded"), "x"), PAM_SESSION_ERR);
	assert_int_equal(code_for(PAM_SLUICE_OPEN, E("Denied"), "x"), PAM_SESSION_ERR);
	assert_int_equal(code_for(PAM_SLUICE_OPEN, E("Unavailable"), "x"), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(code_for(PAM_SLUICE_OPEN, DBUS_ERROR_TIMEOUT, "x"), PAM_AUTHINFO_UNAVAIL);
	/* Close: gone is done, a hung agent or a refusal is an error. */
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, E("NotFound"), "x"), PAM_SUCCESS);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, E("Denied"), "x"), PAM_SESSION_ERR);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, DBUS_ERROR_NAME_HAS_NO_OWNER, "x"), PAM_SUCCESS);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, DBUS_ERROR_SERVICE_UNKNOWN, "x"), PAM_SUCCESS);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, DBUS_ERROR_NO_REPLY, "x"), PAM_SESSION_ERR);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, DBUS_ERROR_TIMEOUT, "x"), PAM_SESSION_ERR);
	assert_int_equal(code_for(PAM_SLUICE_CLOSE, DBUS_ERROR_ACCESS_DENIED, "x"), PAM_SESSION_ERR);
}

static void agent_gone_on_dead_bus(void **state)
{
	struct dbusc *c = NULL;
	struct dbusc_error e = { 0 };

	/* What dbusc says when the bus socket is not there. */
	assert_true(dbusc_open_address("unix:path=/nonexistent/sluice-bus", 1000, &c, &e) < 0);
	assert_int_equal(e.kind, DBUSC_ERR_UNREACHABLE);
	assert_true(pam_sluice_agent_gone(&e));
	assert_int_equal(pam_sluice_pam_code(PAM_SLUICE_AUTH, &e), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(pam_sluice_pam_code(PAM_SLUICE_CLOSE, &e), PAM_SUCCESS);
	dbusc_error_clear(&e);
}

static void session_ids(void **state)
{
	char long_id[PAM_SLUICE_SESSION_ID_MAX + 2];

	assert_true(pam_sluice_session_id_ok("0123456789abcdef0123456789abcdef"));
	assert_true(pam_sluice_session_id_ok("s-1.2_3:4"));
	assert_false(pam_sluice_session_id_ok(NULL));
	assert_false(pam_sluice_session_id_ok(""));
	assert_false(pam_sluice_session_id_ok("a b"));
	assert_false(pam_sluice_session_id_ok("a=b"));
	assert_false(pam_sluice_session_id_ok("a\nb"));
	assert_false(pam_sluice_session_id_ok("../x"));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(pam_sluice_session_id_ok(long_id));
	long_id[PAM_SLUICE_SESSION_ID_MAX] = '\0';
	assert_true(pam_sluice_session_id_ok(long_id));
}

static void log_text(void **state)
{
	char b[16];

	pam_sluice_log_text("token rejected", b, sizeof(b));
	assert_string_equal(b, "token rejected");
	/* Newlines, escapes and C1 controls (CSI is U+009B) cannot forge or
	 * colour a log line. */
	pam_sluice_log_text("a\nb\x1b[1mc\xc2\x9b" "d\x7f", b, sizeof(b));
	assert_string_equal(b, "a?b?[1mc?d?");
	/* Other non-ASCII passes; a cut never splits a character. */
	pam_sluice_log_text("caf\xc3\xa9", b, sizeof(b));
	assert_string_equal(b, "caf\xc3\xa9");
	pam_sluice_log_text("0123456789abcd\xc3\xa9", b, sizeof(b)); /* 15 bytes fit */
	assert_string_equal(b, "0123456789abcd");
	pam_sluice_log_text("0123456789abc\xe2\x82\xac", b, sizeof(b));
	assert_string_equal(b, "0123456789abc");
	pam_sluice_log_text("", b, sizeof(b));
	assert_string_equal(b, "");

	assert_false(pam_sluice_has_control("sluicet-a"));
	assert_false(pam_sluice_has_control("user\xc3\xa9"));
	assert_true(pam_sluice_has_control("a\tb"));
	assert_true(pam_sluice_has_control("a\xc2\x85" "b")); /* NEL */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_defaults),
		cmocka_unit_test(args_all),
		cmocka_unit_test(args_use_first_pass_wins),
		cmocka_unit_test(args_rejected),
		cmocka_unit_test(expand_ok),
		cmocka_unit_test(expand_rejects_walking_users),
		cmocka_unit_test(expand_caps_length),
		cmocka_unit_test_setup_teardown(read_ok, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(read_size_cap, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(read_refused, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(read_owner, tmp_setup, tmp_teardown),
		cmocka_unit_test(mapping_auth),
		cmocka_unit_test(mapping_account_session),
		cmocka_unit_test(agent_gone_on_dead_bus),
		cmocka_unit_test(session_ids),
		cmocka_unit_test(log_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
