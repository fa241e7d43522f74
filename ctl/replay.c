/* replay: a grant's session (or one statement) as it happened, from the
 * session database: time, statement, decision and rule, what the client was
 * sent back as far as it was recorded (agent/pgrecord.h has the format),
 * row count, duration. Read-only, like audit. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <iconv.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/auditdb.h"
#include "common/buf.h"
#include "common/pgenc.h"
#include "common/util.h"

#define CELL_WIDTH 40
#define SQL_WIDTH 120
#define BINARY_SHOWN 32 /* bytes of a binary value shown as hex */

/* One decoded record: its columns and rows, values converted to UTF-8. */
struct rcol {
	char *name;
	uint32_t type_oid;
	int16_t format;
};

struct rrec {
	struct rcol *cols;
	size_t n_cols;
	char ***rows;       /* rows[i][k]: NULL for SQL NULL */
	size_t n_rows;
	bool cut;           /* rows were left out when recording */
	bool bad;           /* the record could not be read whole */
};

static void rrec_free(struct rrec *r)
{
	for (size_t i = 0; i < r->n_cols; i++)
		free(r->cols[i].name);
	free(r->cols);
	for (size_t i = 0; i < r->n_rows; i++) {
		size_t n = r->n_cols;
		for (size_t k = 0; k < n; k++)
			free(r->rows[i][k]);
		free(r->rows[i]);
	}
	free(r->rows);
	*r = (struct rrec){ 0 };
}

/* A value as text: converted from the client's encoding, or, in binary
 * format, as \x and hex (the first BINARY_SHOWN bytes). */
static char *value_text(iconv_t cd, const uint8_t *p, size_t n, int16_t format)
{
	char *out, *in = (char *)p, *o;
	size_t left = n, room;

	if (format == 1) {
		size_t shown = MIN(n, (size_t)BINARY_SHOWN);

		out = malloc(2 + 2 * shown + 4);
		if (!out)
			return NULL;
		memcpy(out, "\\x", 2);
		hex_encode(p, shown, out + 2);
		strcpy(out + 2 + 2 * shown, shown < n ? "..." : "");
		return out;
	}
	if (cd == (iconv_t)-1) {
		out = malloc(n + 1);
		if (out) {
			memcpy(out, p, n);
			out[n] = '\0';
		}
		return out;
	}
	room = 4 * n + 1;
	out = malloc(room);
	if (!out)
		return NULL;
	o = out;
	iconv(cd, NULL, NULL, NULL, NULL);
	while (left > 0) {
		if (iconv(cd, &in, &left, &o, &room) != (size_t)-1)
			break;
		if (errno != EILSEQ && errno != EINVAL)
			break;
		/* A byte that does not convert: keep it; ctl_utf8_fix marks it. */
		if (room < 2)
			break;
		*o++ = *in++;
		room--;
		left--;
	}
	*o = '\0';
	return out;
}

static bool get16(const uint8_t *p, size_t n, size_t *off, uint16_t *v)
{
	if (n - *off < 2)
		return false;
	*v = get_u16(p + *off);
	*off += 2;
	return true;
}

static bool get32(const uint8_t *p, size_t n, size_t *off, uint32_t *v)
{
	if (n - *off < 4)
		return false;
	*v = get_u32(p + *off);
	*off += 4;
	return true;
}

static int read_description(struct rrec *r, iconv_t cd, const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint16_t nf;

	if (!get16(p, n, &off, &nf))
		return -EBADMSG;
	r->cols = calloc(nf ? nf : 1, sizeof(*r->cols));
	if (!r->cols)
		return -ENOMEM;
	for (uint16_t i = 0; i < nf; i++) {
		const uint8_t *end = memchr(p + off, '\0', n - off);
		uint32_t table_oid, type_oid, typmod;
		uint16_t attnum, typlen, format;
		struct rcol *c = &r->cols[i];

		if (!end)
			return -EBADMSG;
		c->name = value_text(cd, p + off, (size_t)(end - (p + off)), 0);
		if (!c->name)
			return -ENOMEM;
		r->n_cols = i + 1u;
		off = (size_t)(end - p) + 1;
		if (!get32(p, n, &off, &table_oid) || !get16(p, n, &off, &attnum) ||
		    !get32(p, n, &off, &type_oid) || !get16(p, n, &off, &typlen) ||
		    !get32(p, n, &off, &typmod) || !get16(p, n, &off, &format))
			return -EBADMSG;
		c->type_oid = type_oid;
		c->format = (int16_t)format;
	}
	r->n_cols = nf;
	return 0;
}

static int read_row(struct rrec *r, iconv_t cd, const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint16_t nv;
	char **row, ***rows;

	if (!get16(p, n, &off, &nv))
		return -EBADMSG;
	/* Rows without a description get unnamed columns. */
	if (r->n_cols == 0 && nv > 0) {
		r->cols = calloc(nv, sizeof(*r->cols));
		if (!r->cols)
			return -ENOMEM;
		r->n_cols = nv;
	}
	if (nv != r->n_cols)
		return -EBADMSG;
	rows = reallocarray(r->rows, r->n_rows + 1, sizeof(*r->rows));
	if (!rows)
		return -ENOMEM;
	r->rows = rows;
	row = calloc(nv ? nv : 1, sizeof(*row));
	if (!row)
		return -ENOMEM;
	r->rows[r->n_rows++] = row;
	for (uint16_t k = 0; k < nv; k++) {
		uint32_t len;

		if (!get32(p, n, &off, &len))
			return -EBADMSG;
		if (len == UINT32_MAX)
			continue; /* NULL */
		if (n - off < len)
			return -EBADMSG;
		row[k] = value_text(cd, p + off, len, r->cols[k].format);
		if (!row[k])
			return -ENOMEM;
		off += len;
	}
	return 0;
}

/* Decode blob into r. A record that does not read whole (it was edited:
 * `audit verify` says so) keeps what read and is marked bad. */
static int rrec_read(struct rrec *r, const uint8_t *p, size_t n)
{
	const uint8_t *enc_end;
	size_t off;
	iconv_t cd = (iconv_t)-1;
	int ret = 0;

	*r = (struct rrec){ 0 };
	if (n < 6 || memcmp(p, "SLR1", 4) != 0 || !(enc_end = memchr(p + 4, '\0', n - 4)) ||
	    (size_t)(enc_end - p) + 2 > n) {
		r->bad = true;
		return 0;
	}
	{
		/* NULL for UTF8 and SQL_ASCII: shown as recorded. */
		const char *name = pgenc_iconv_name((const char *)p + 4);
		if (name)
			cd = iconv_open("UTF-8", name);
	}
	off = (size_t)(enc_end - p) + 1;
	r->cut = p[off] & 1;
	off++;
	while (off < n && ret == 0) {
		uint8_t type = p[off];
		uint32_t len;

		if (n - off < 5 || (len = get_u32(p + off + 1)) < 4 || n - off - 1 < len) {
			ret = -EBADMSG;
			break;
		}
		if (type == 'T' && r->n_cols == 0 && r->n_rows == 0)
			ret = read_description(r, cd, p + off + 5, len - 4);
		else if (type == 'D')
			ret = read_row(r, cd, p + off + 5, len - 4);
		else
			ret = -EBADMSG;
		off += 1 + len;
	}
	if (cd != (iconv_t)-1)
		iconv_close(cd);
	if (ret == -EBADMSG) {
		r->bad = true;
		ret = 0;
	}
	return ret;
}

/* ---- output ------------------------------------------------------------------ */

struct replay_out {
	const struct ctl *ctl;
	size_t n;
	bool first_json;
	int err;
};

static json_t *result_json(const struct rrec *r)
{
	json_t *cols = json_array(), *rows = json_array(), *j;

	if (!cols || !rows)
		goto fail;
	for (size_t k = 0; k < r->n_cols; k++) {
		json_t *c = json_pack("{s:o, s:I, s:s}", "name", ctl_json_string(r->cols[k].name),
				      "type_oid", (json_int_t)r->cols[k].type_oid, "format",
				      r->cols[k].format == 1 ? "binary" : "text");
		if (!c || json_array_append_new(cols, c) < 0)
			goto fail;
	}
	for (size_t i = 0; i < r->n_rows; i++) {
		json_t *row = json_array();

		if (!row || json_array_append_new(rows, row) < 0)
			goto fail;
		for (size_t k = 0; k < r->n_cols; k++)
			if (json_array_append_new(row, ctl_json_string(r->rows[i][k])) < 0)
				goto fail;
	}
	j = json_pack("{s:o, s:o, s:b, s:b}", "columns", cols, "rows", rows, "truncated", r->cut,
		      "unreadable", r->bad);
	return j;
fail:
	json_decref(cols);
	json_decref(rows);
	return NULL;
}

static int print_result(const struct ctl *ctl, const struct rrec *r, int64_t total_rows)
{
	const char **headers = NULL, **cells = NULL;
	struct table *t = NULL;
	int ret = -ENOMEM;

	if (r->n_cols == 0) {
		if (r->bad)
			printf("    (the recorded result cannot be read: run sluicectl audit verify)\n");
		return 0;
	}
	headers = calloc(r->n_cols, sizeof(*headers));
	cells = calloc(r->n_cols, sizeof(*cells));
	if (!headers || !cells)
		goto out;
	for (size_t k = 0; k < r->n_cols; k++)
		headers[k] = r->cols[k].name ? r->cols[k].name : "?column?";
	t = table_new(r->n_cols, headers);
	if (!t)
		goto out;
	for (size_t k = 0; k < r->n_cols; k++)
		table_set_max_width(t, k, CELL_WIDTH, ctl->ellipsis);
	for (size_t i = 0; i < r->n_rows; i++) {
		for (size_t k = 0; k < r->n_cols; k++)
			cells[k] = r->rows[i][k] ? r->rows[i][k] : "NULL";
		if ((ret = table_add_row(t, cells)) < 0)
			goto out;
	}
	/* Indent the table under its statement. */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);

		if (!mem)
			goto out;
		ret = table_flush(t, mem);
		if (fclose(mem) != 0 && ret == 0)
			ret = -EIO;
		for (char *line = text, *nl; ret == 0 && line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			printf("    %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
		}
		free(text);
	}
	if (r->cut && total_rows >= 0)
		printf("    (%zu of %" PRId64 " rows recorded)\n", r->n_rows, total_rows);
	else if (r->cut)
		printf("    (the first %zu rows recorded)\n", r->n_rows);
	if (r->bad)
		printf("    (the rest of the recorded result cannot be read: run sluicectl audit verify)\n");
out:
	table_free(t);
	free(headers);
	free(cells);
	return ret;
}

static int replay_row(const struct auditdb_statement_row *s, void *ud)
{
	struct replay_out *o = ud;
	struct rrec rec = { 0 };
	int r = 0;

	o->n++;
	if (s->result) {
		r = rrec_read(&rec, s->result, s->result_len);
		if (r < 0)
			return r;
	}
	if (o->ctl->json) {
		json_t *res = s->result ? result_json(&rec) : json_null();
		json_t *j = res ? json_pack("{s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
					    "s:o, s:o}",
					    "id", (json_int_t)s->id, "time", ctl_json_time(s->ts_us),
					    "grant_id", ctl_json_string(s->grant_id),
					    "conn_serial", (json_int_t)s->conn_serial,
					    "sql", ctl_json_string(s->sql),
					    "decision", ctl_json_string(s->decision),
					    "rule", ctl_json_string(s->rule),
					    "outcome", ctl_json_string(s->outcome),
					    "sqlstate", ctl_json_string(s->sqlstate),
					    "error", ctl_json_string(s->error),
					    "rows", s->rows >= 0 ? json_integer(s->rows) : json_null(),
					    "duration_us", s->duration_us >= 0 ? json_integer(s->duration_us)
									     : json_null(),
					    "result", res)
				: NULL;

		rrec_free(&rec);
		return ctl_json_stream_item(&o->first_json, j);
	}
	{
		char when[40], dur[32], rows[48];
		char *sql = ctl_sanitize(s->sql ? s->sql : "", true);
		char *rule = ctl_sanitize(s->rule ? s->rule : "", true);
		char *what = ctl_sanitize(s->error ? s->error : s->outcome ? s->outcome : "-", true);

		if (!sql || !rule || !what) {
			free(sql);
			free(rule);
			free(what);
			rrec_free(&rec);
			return -ENOMEM;
		}
		ctl_format_local_time(s->ts_us, when, sizeof(when));
		ctl_format_elapsed(s->duration_us, dur, sizeof(dur));
		if (s->rows >= 0)
			snprintf(rows, sizeof(rows), "%" PRId64 " row%s", s->rows, s->rows == 1 ? "" : "s");
		else
			snprintf(rows, sizeof(rows), "-");
		printf("%s%s  #%" PRId64 "  connection %" PRId64 "  %s%s%s%s\n", o->n > 1 ? "\n" : "",
		       when, s->id, s->conn_serial, s->decision ? s->decision : "?",
		       *rule ? " (" : "", rule, *rule ? ")" : "");
		if (strlen(sql) > SQL_WIDTH)
			printf("  %.*s%s\n", SQL_WIDTH, sql, o->ctl->ellipsis);
		else
			printf("  %s\n", sql);
		printf("  -> %s%s%s, %s, %s\n", s->sqlstate ? s->sqlstate : "", s->sqlstate ? ": " : "",
		       what, rows, dur);
		free(sql);
		free(rule);
		free(what);
		if (s->result)
			r = print_result(o->ctl, &rec, s->rows);
		rrec_free(&rec);
		return r;
	}
}

int cmd_replay(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl replay GRANT_ID|STATEMENT_ID [--database PATH] [--json]";
	const char *database = NULL;
	char *pos[1] = { NULL };
	const struct ctl_opt opts[] = {
		{ "database", true, &database, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct auditdb_filter f = { 0 };
	struct replay_out o = { .ctl = ctl, .first_json = true };
	_cleanup_free_ char *path = NULL;
	sqlite3 *db = NULL;
	size_t n_pos;
	uint64_t id;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	if (!*pos[0])
		return ctl_usage_error("%s", usage);
	/* A statement's id is a number (sluicectl audit --json shows it); a
	 * grant's id never is. */
	if (parse_u64(pos[0], 1, INT64_MAX, &id) == 0)
		f.id = (int64_t)id;
	else
		f.grant_id = pos[0];
	r = ctl_audit_db_open(ctl, database, &path, &db);
	if (r != 0)
		return r;
	r = auditdb_each_statement(db, &f, replay_row, &o);
	sqlite3_close(db);
	if (r == 0) {
		if (ctl->json)
			ctl_json_stream_end(o.first_json);
		else if (o.n == 0 && f.id) {
			ctl_err("no statement %" PRId64 " in the audit database", f.id);
			return CTL_FAILED;
		} else if (o.n == 0) {
			char *g = ctl_sanitize(pos[0], true);
			ctl_err("no statements recorded for grant %s", g ? g : "?");
			free(g);
			return CTL_FAILED;
		}
	}
	if (r < 0) {
		ctl_err("cannot read the audit database %s: %s", path, strerror(-r));
		return CTL_FAILED;
	}
	return CTL_OK;
}
