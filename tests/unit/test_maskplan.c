/* Mask plans (policy/maskplan.c): which result columns of a statement may
 * carry a masked value, by name as PostgreSQL resolves names. A corpus of
 * statements, each with the plan expected, written compactly:
 *
 *   C                 MP_CLEAN
 *   R:why             MP_REFUSE with exactly this message
 *   M[0,-,1+~,a~]     MP_MASK by position: rule index, - untainted, a
 *                     MP_RULE_ANY, + several rules, ~ mixed (mp_method: redact)
 *   M*0               MP_MASK not positional: `all`
 *
 * then " cursor=", " fetch=", " prepare=", " execute=" when set, and
 * " | " between the statements of a text. Then mp_method, multi-statement
 * texts, parse errors, caps, and random mutations of the corpus's SQL and
 * of libpg_query's JSON for it (never a crash; run under ASan too). */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <pg_query.h>

#include "policy/maskplan.h"
#include "policy/maskplan_int.h"

/* ---- the configuration every case runs with ---- */

static struct pol_mask_rule rules[] = {
	{ .schema = "ops", .table = "customers", .column = "ssn", .method = MASK_LAST4 },   /* 0 */
	{ .schema = "ops", .table = "customers", .column = "email", .method = MASK_EMAIL }, /* 1 */
	{ .schema = "ops", .table = "cards", .column = "pan", .method = MASK_LAST4 },       /* 2 */
	{ .schema = "public", .table = "People", .column = "Tax ID", .method = MASK_HASH }, /* 3 */
};

static const char *const views[] = { "ops.customer_v", "ops.bad_v" };
static const size_t view_rules[] = { 0, 99 /* no such rule: any */ };
static const char *const fns[] = { "leak" };

static const struct mask_catalog cat = {
	.views = views, .view_rules = view_rules, .n_views = 2,
	.user_functions = fns, .n_user_functions = 1,
};

static struct pol_mask mask(bool strict)
{
	return (struct pol_mask){ .rules = rules, .n_rules = ARRAY_SIZE(rules), .strict = strict };
}

/* ---- rendering ---- */

static char got[8192];

static void put(const char *fmt, ...)
{
	size_t n = strlen(got);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(got + n, sizeof(got) - n, fmt, ap);
	va_end(ap);
}

static void put_col(const struct mp_column *c)
{
	if (!c->tainted) {
		put("-");
		return;
	}
	if (c->rule == MP_RULE_ANY)
		put("a");
	else
		put("%d", c->rule);
	put("%s%s", c->several ? "+" : "", c->mixed ? "~" : "");
}

static void render(const struct mask_plans *p)
{
	got[0] = '\0';
	if (p->error) {
		put("E:%s", p->error);
		return;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct mask_plan *x = &p->v[i];

		if (i)
			put(" | ");
		switch (x->verdict) {
		case MP_CLEAN:
			put("C");
			assert_null(x->why);
			break;
		case MP_REFUSE:
			assert_non_null(x->why);
			put("R:%s", x->why);
			break;
		case MP_MASK:
			assert_null(x->why);
			if (x->positional) {
				put("M[");
				for (size_t k = 0; k < x->n_columns; k++) {
					if (k)
						put(",");
					put_col(&x->columns[k]);
				}
				put("]");
			} else {
				assert_int_equal(x->n_columns, 0);
				put("M*");
				put_col(&x->all);
			}
			break;
		}
		if (x->cursor)
			put(" cursor=%s", x->cursor);
		if (x->fetch_cursor)
			put(" fetch=%s", x->fetch_cursor);
		if (x->prepare)
			put(" prepare=%s", x->prepare);
		if (x->execute)
			put(" execute=%s", x->execute);
	}
}

static const char *plan_with(const char *sql, const struct pol_mask *m, const struct mask_catalog *c)
{
	struct mask_plans p = { 0 };

	assert_int_equal(mask_plan(sql, m, c, &p), 0);
	render(&p);
	mask_plans_free(&p);
	assert_null(p.v);
	return got;
}

static const char *plan(const char *sql, bool strict)
{
	struct pol_mask m = mask(strict);

	return plan_with(sql, &m, &cat);
}

/* ---- the corpus ---- */

struct mp_case {
	const char *sql;
	bool strict;
	const char *want;
};

#define S true
#define N false

static const struct mp_case cases[] = {
	/* Plain columns, qualified, unqualified, quoted. */
	{ "select ssn from customers", N, "M[0]" },
	{ "select id, name from customers", N, "C" },
	{ "select ssn from ops.customers", N, "M[0]" },
	{ "select ssn from public.customers", N, "C" },
	{ "select c.ssn, c.email, c.id from customers c", N, "M[0,1,-]" },
	{ "select ops.customers.ssn from ops.customers", N, "M[0]" },
	{ "select SSN from Customers", N, "M[0]" },
	{ "select \"SSN\" from customers", N, "C" },
	{ "select \"Tax ID\" from \"People\"", N, "M[3]" },
	{ "select \"Tax ID\" from people", N, "C" },
	{ "select \"tax id\" from \"People\"", N, "C" },
	{ "select ssn from other", N, "C" },
	/* A same-named column of a table not in the rule, in a statement that
	 * names the rule's table: over-masked by design. */
	{ "select o.ssn from orders o join customers c on c.id = o.cid", N, "M[0]" },
	{ "select ssn x, email as y from customers", N, "M[0,1]" },
	{ "select 1, 'a', $1, current_user, now()", N, "C" },
	{ "select id from customers where ssn = '1'", N, "C" },
	{ "select from customers", N, "C" },
	/* Every expression shape. */
	{ "select upper(ssn) from customers", N, "M[0]" },
	{ "select ssn::int, cast(ssn as text) from customers", N, "M[0,0]" },
	{ "select ssn || 'x', -length(email) from customers", N, "M[0,1]" },
	{ "select count(ssn), max(email), string_agg(ssn, ',') from customers", N, "M[0,1,0]" },
	{ "select count(*) from customers", N, "C" },
	{ "select case when ssn like '1%' then 'a' else 'b' end from customers", N, "M[0]" },
	{ "select coalesce(ssn, email) from customers", N, "M[0+~]" },
	{ "select coalesce(c.ssn, k.pan) from customers c, cards k", N, "M[0+]" },
	{ "select greatest(ssn, 'a'), nullif(ssn, 'x') from customers", N, "M[0,0]" },
	{ "select array[ssn], (array[ssn])[1], row(ssn, 1) from customers", N, "M[0,0,0]" },
	{ "select ssn is null, ssn in ('a', 'b'), ssn collate \"C\" from customers", N, "M[0,0,0]" },
	{ "select (select ssn from customers limit 1)", N, "M[0]" },
	{ "select array(select email from customers)", N, "M[1]" },
	{ "select exists(select 1 from customers where ssn = 'x')", N, "M[0]" },
	{ "select exists(select * from customers)", N, "C" },
	{ "select 1 in (select ssn from customers)", N, "M[0]" },
	{ "select percentile_disc(0.5) within group (order by ssn) from customers", N, "M[0]" },
	{ "select string_agg(name, ',' order by ssn) from customers", N, "M[0]" },
	{ "select count(*) filter (where ssn like '1%') from customers", N, "M[0]" },
	{ "select rank() over (order by ssn), id from customers", N, "M[0,-]" },
	{ "select xmlelement(name x, ssn), format('%s', email) from customers", N, "M[0,1]" },
	/* Whole rows. */
	{ "select c from customers c", N, "M[0+~]" },
	{ "select customers from customers", N, "M[0+~]" },
	{ "select row_to_json(c) from customers c", N, "M[0+~]" },
	{ "select row_to_json(c.*) from customers c", N, "M[0+~]" },
	{ "select to_jsonb(c), json_agg(c) from customers c", N, "M[0+~,0+~]" },
	{ "select (c.*)::text from customers c", N, "M[0+~]" },
	{ "select (c).ssn from customers c", N, "M[0+~]" },
	{ "select k from cards k", N, "M[2]" },
	{ "select o from orders o", N, "C" },
	/* At the top of a plain SELECT, * of a table: origin columns. */
	{ "select c.* from customers c", N, "M*-" },
	{ "select * from customers", N, "M*-" },
	{ "table customers", N, "M*-" },
	{ "select * from orders", N, "C" },
	{ "select c.*, c from customers c", N, "M*0+~" },
	{ "select (c).* from customers c", N, "M*0+~" },
	{ "select *, ssn || '' from customers", N, "M*0" },
	/* Views (the catalog's, any schema when unqualified). */
	{ "select * from customer_v", N, "M*0" },
	{ "select a, b from ops.customer_v", N, "M[0,0]" },
	{ "select v.a from customer_v v", N, "M[0]" },
	{ "select id from orders, customer_v", N, "M[0]" },
	{ "select o.id from orders o, customer_v v", N, "C" },
	{ "select * from public.customer_v", N, "C" },
	{ "select x from bad_v", N, "M[a~]" },
	{ "select most_common_vals from pg_stats where tablename = 'customers'", N, "M[a~]" },
	{ "select * from pg_catalog.pg_stats", N, "M*a~" },
	/* User functions. */
	{ "select leak(id) from orders", N, "M[a~]" },
	{ "select pg_catalog.leak(1)", N, "C" },
	{ "select public.leak(1)", N, "M[a~]" },
	{ "select * from leak()", N, "M*a~" },
	{ "select x from leak() x", N, "M[a~]" },
	{ "select coalesce(ssn, leak(1)) from customers", N, "M[0+~]" },
	/* CTEs. */
	{ "with w as (select ssn from customers) select ssn from w", N, "M[0]" },
	{ "with w(x) as (select ssn from customers) select x from w", N, "M[0]" },
	{ "with w as (select id, ssn as s from customers) select id from w", N, "C" },
	{ "with w as (select * from customers) select * from w", N, "M*0+~" },
	{ "with recursive r(a, b) as (select 1, ssn from customers union all select b, a from r) "
	  "select a from r", N, "M[0]" },
	{ "with d as (delete from customers returning ssn) select ssn from d", N, "M[0]" },
	{ "with d as (update customers set name = 'x' returning email) select 1 from d", N, "C" },
	{ "with d as (insert into archive select ssn from customers returning id) select id from d", N,
	  "R:masked column ops.customers.ssn would be written to archive, where it is not masked" },
	/* A CTE named like the table: both count (over-masked by design). */
	{ "with customers as (select 1 as ssn) select ssn from customers", N, "M[0]" },
	/* FROM subqueries, functions, VALUES. */
	{ "select x from (select ssn as x from customers) s", N, "M[0]" },
	{ "select a, b from (select id, ssn from customers) s(a, b)", N, "M[-,0]" },
	{ "select b from (select * from customers) s(a, b)", N, "M[0+~]" },
	{ "select s.* from (select upper(ssn) from customers) s", N, "M*0" },
	{ "select upper from (select upper(ssn) from customers) s", N, "M[0]" },
	{ "select \"?column?\" from (select ssn || '' from customers) s", N, "M[0]" },
	{ "select \"case\", \"coalesce\" from (select case when true then ssn end, coalesce(email) "
	  "from customers) s", N, "M[0,1]" },
	{ "select column1 from (values ((select ssn from customers limit 1)), ('x')) v", N, "M[0]" },
	{ "select x from customers c, lateral unnest(string_to_array(c.ssn, '-')) x", N, "M[0]" },
	{ "select u.v from customers c, lateral unnest(array[c.ssn]) as u(v)", N, "M[0]" },
	{ "select * from json_to_record('{}') as j(a int), customers", N, "M*-" },
	{ "select j.a from customers c, json_to_record(row_to_json(c)) as j(a text)", N, "M[0+~]" },
	{ "select y.b from orders x join lateral (select ssn as b from customers) y on true", N, "M[0]" },
	{ "select j.ssn from (customers c join orders o on o.cid = c.id) j", N, "M[0]" },
	{ "select id from orders o, (select 1) s where o.id > 0", N, "C" },
	/* Set operations, by position. */
	{ "select ssn from customers union select name from other", N, "M[0]" },
	{ "select name from other union all select ssn from customers", N, "M[0]" },
	{ "select id, name from other union select id, ssn from customers", N, "M[-,0]" },
	{ "select * from customers union all select * from customers", N, "M*0+~" },
	{ "select 1 intersect select 2", N, "C" },
	{ "values ((select ssn from customers limit 1), 1)", N, "M[0,-]" },
	/* RETURNING, and what writes copy. */
	{ "insert into customers (ssn) values ('1') returning ssn, id", N, "M[0,-]" },
	{ "insert into customers (ssn) values ('1') returning *", N, "M*-" },
	{ "update customers set name = 'x' returning email", N, "M[1]" },
	{ "delete from customers returning customers", N, "M[0+~]" },
	{ "update customers set ssn = upper(ssn)", N, "C" },
	{ "insert into customers (name) values ('x')", N, "C" },
	{ "insert into archive (x) select ssn from customers", N,
	  "R:masked column ops.customers.ssn would be written to archive.x, where it is not masked" },
	{ "insert into customers (ssn) select ssn from customers", N, "C" },
	{ "insert into customers (email) select ssn from customers", N,
	  "R:masked column ops.customers.ssn would be written to customers.email, where it is not masked" },
	{ "insert into customers select * from customers", N,
	  "R:masked column ops.customers.ssn would be written to customers, where it is not masked" },
	{ "update orders set note = c.ssn from customers c where c.id = orders.cid", N,
	  "R:masked column ops.customers.ssn would be written to orders.note, where it is not masked" },
	{ "insert into customers (ssn) values ('1') on conflict (id) do update set name = excluded.ssn", N,
	  "R:masked column ops.customers.ssn would be written to customers.name, where it is not masked" },
	{ "insert into customers (ssn) values ('1') on conflict (id) do update set ssn = excluded.ssn", N, "C" },
	{ "merge into archive a using customers c on a.id = c.id when matched then update set x = c.ssn", N,
	  "R:masked column ops.customers.ssn would be written to archive.x, where it is not masked" },
	{ "merge into customers t using src s on t.id = s.id when not matched then insert (ssn) "
	  "values (s.ssn)", N, "C" },
	{ "create table x as select * from customers", N,
	  "R:masked column ops.customers.ssn would be written to x, where it is not masked" },
	{ "create table x as select id from customers", N, "C" },
	{ "select ssn into x from customers", N,
	  "R:masked column ops.customers.ssn would be written to x, where it is not masked" },
	{ "create table x as select * from customers with no data", N, "C" },
	{ "create table x as execute p", N,
	  "R:CREATE TABLE AS EXECUTE copies a prepared statement's rows, which masking does not follow" },
	{ "insert into log select leak(1)", N,
	  "R:function leak (its result may be a masked value) would be written to log, where it is not masked" },
	/* Cursors and prepared statements. */
	{ "declare c cursor for select ssn from customers", N, "M[0] cursor=c" },
	{ "declare c cursor with hold for select id from customers", N, "C cursor=c" },
	{ "fetch 10 from c", N, "M*a~ fetch=c" },
	{ "move c", N, "C fetch=c" },
	{ "prepare p as select email from customers", N, "M[1] prepare=p" },
	{ "prepare p(int) as update customers set name = 'x' where id = $1", N, "C prepare=p" },
	{ "prepare p as insert into archive select ssn from customers", N,
	  "R:masked column ops.customers.ssn would be written to archive, where it is not masked prepare=p" },
	{ "execute p(1)", N, "M*a~ execute=p" },
	/* COPY. */
	{ "copy customers to stdout", N,
	  "R:masked column ops.customers.ssn in COPY customers TO (COPY data is not masked)" },
	{ "copy ops.customers (id, name) to stdout", N, "C" },
	{ "copy customers (id, email) to stdout", N,
	  "R:masked column ops.customers.email in COPY customers TO (COPY data is not masked)" },
	{ "copy (select id from customers) to stdout", N, "C" },
	{ "copy (select upper(email) from customers) to stdout", N,
	  "R:masked column ops.customers.email in COPY ... TO (COPY data is not masked)" },
	{ "copy (select * from customers) to stdout", N,
	  "R:masked column ops.customers.ssn in COPY ... TO (COPY data is not masked)" },
	{ "copy customers from stdin", N, "C" },
	{ "copy customer_v to stdout", N,
	  "R:view ops.customer_v (masked column ops.customers.ssn) in COPY customer_v TO (COPY data is not masked)" },
	{ "copy other to stdout", N, "C" },
	/* EXPLAIN: plan text, unless a user function may be folded into it. */
	{ "explain select ssn from customers", N, "C" },
	{ "explain analyze select leak(1)", N, "M[a~]" },
	{ "explain select id from orders where x = leak(1)", N, "M[a~]" },
	{ "explain (analyze, verbose) insert into archive select ssn from customers", N,
	  "R:masked column ops.customers.ssn would be written to archive, where it is not masked" },
	{ "explain insert into archive select ssn from customers", N, "C" },
	{ "explain execute p", N, "M[a~]" },
	/* What cannot be followed, and ways values leave. */
	{ "do $$ begin raise notice '%', (select ssn from customers limit 1); end $$", N,
	  "R:DO: what a DO block reads and prints cannot be followed by masking" },
	{ "call proc(1)", N, "R:CALL proc: what a procedure reads and prints cannot be followed by masking" },
	{ "select query_to_xml('select ssn from customers', true, true, '')", N,
	  "R:function query_to_xml runs SQL given as text, which masking cannot follow" },
	{ "select pg_notify('ch', ssn) from customers", N,
	  "R:masked column ops.customers.ssn is passed to pg_notify, which keeps or sends it unmasked" },
	{ "select set_config('a.b', email, false) from customers", N,
	  "R:masked column ops.customers.email is passed to set_config, which keeps or sends it unmasked" },
	{ "select pg_notify('ch', 'x')", N, "C" },
	/* Statements without rows. */
	{ "set search_path = ops", N, "C" },
	{ "create table t (a int)", N, "C" },
	{ "show search_path", N, "C" },
	{ "begin", N, "C" },
	/* DDL that would unmask. */
	{ "alter table customers rename column ssn to s", N,
	  "R:masked column ops.customers.ssn would no longer be masked once renamed" },
	{ "alter table customers rename column name to n", N, "C" },
	{ "alter table ops.customers rename to c2", N,
	  "R:masked column ops.customers.ssn would no longer be masked once renamed" },
	{ "alter schema ops rename to ops2", N,
	  "R:masked column ops.customers.ssn would no longer be masked once renamed" },
	{ "alter table customers set schema public", N,
	  "R:masked column ops.customers.ssn would no longer be masked once its table moves to schema public" },
	{ "alter table customers alter column name type text using ssn", N,
	  "R:masked column ops.customers.ssn would be written to customers.name, where it is not masked" },
	{ "alter table customers add column g text generated always as (ssn) stored", N,
	  "R:masked column ops.customers.ssn would be written to customers.g, where it is not masked" },
	{ "create trigger t after insert on customers for each row execute function f()", N,
	  "R:masked column ops.customers.ssn would be seen by a trigger, which masking cannot follow" },
	{ "create rule r as on update to customers do also insert into log values (new.ssn)", N,
	  "R:masked column ops.customers.ssn would be seen by a rule, which masking cannot follow" },
	{ "create trigger t after insert on orders for each row execute function f()", N, "C" },
	/* strict = yes, in every clause. */
	{ "select id from customers where ssn = '1'", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "select ssn from customers", S, "M[0]" },
	{ "select * from customers where id = 1", S, "M*-" },
	{ "select id from customers c join cards k on k.pan = c.ssn", S,
	  "R:masked column ops.cards.pan in JOIN ... ON (strict)" },
	{ "select id from customers join cards using (pan)", S,
	  "R:masked column ops.cards.pan in JOIN ... USING (strict)" },
	{ "select id from customers natural join other", S,
	  "R:masked column ops.customers.ssn in NATURAL JOIN (strict)" },
	{ "select ssn, count(*) from customers group by ssn", S,
	  "R:masked column ops.customers.ssn in GROUP BY (strict)" },
	{ "select ssn, count(*) from customers group by 1", S,
	  "R:masked column ops.customers.ssn in GROUP BY (strict)" },
	{ "select id from customers group by id having max(ssn) > '5'", S,
	  "R:masked column ops.customers.ssn in HAVING (strict)" },
	{ "select id from customers order by ssn", S,
	  "R:masked column ops.customers.ssn in ORDER BY (strict)" },
	{ "select ssn from customers order by 1", S,
	  "R:masked column ops.customers.ssn in ORDER BY (strict)" },
	{ "select ssn as x from customers order by x", S,
	  "R:masked column ops.customers.ssn in ORDER BY (strict)" },
	{ "select id, ssn from customers order by 1", S, "M[-,0]" },
	{ "select distinct ssn from customers", S,
	  "R:masked column ops.customers.ssn in DISTINCT (strict)" },
	{ "select distinct on (email) id from customers", S,
	  "R:masked column ops.customers.email in DISTINCT ON (strict)" },
	{ "select distinct id from customers", S, "C" },
	{ "select rank() over (partition by ssn) from customers", S,
	  "R:masked column ops.customers.ssn in a window's PARTITION BY (strict)" },
	{ "select rank() over w from customers window w as (order by email)", S,
	  "R:masked column ops.customers.email in a window's ORDER BY (strict)" },
	{ "select ssn from customers union select ssn from customers", S,
	  "R:masked column ops.customers.ssn in UNION (strict)" },
	{ "select ssn from customers union all select ssn from customers", S, "M[0]" },
	{ "select ssn from customers intersect all select '1'", S,
	  "R:masked column ops.customers.ssn in INTERSECT (strict)" },
	{ "select email from customers except select '1'", S,
	  "R:masked column ops.customers.email in EXCEPT (strict)" },
	{ "select id from customers limit (select length(ssn) from customers limit 1)", S,
	  "R:masked column ops.customers.ssn in LIMIT (strict)" },
	{ "select id from other where x in (select ssn from customers)", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "select id from other where exists (select * from customers c where c.id = other.cid)", S, "C" },
	{ "select id from other where exists (select 1 from customers c where c.ssn = other.x)", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "select (select name from customers where ssn = '1')", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "update customers set name = 'x' where ssn = '1'", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "delete from customers where email like '%@x'", S,
	  "R:masked column ops.customers.email in WHERE (strict)" },
	{ "merge into archive a using customers c on a.k = c.ssn when matched then delete", S,
	  "R:masked column ops.customers.ssn in MERGE ... ON (strict)" },
	{ "select id from (select id from customers order by ssn) s", S,
	  "R:masked column ops.customers.ssn in ORDER BY (strict)" },
	{ "select a from (select ssn a from customers) s where a = '1'", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "with x as (select ssn from customers) select 1 from x where ssn = '1'", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "select id from customers where leak(id) = 'x'", S,
	  "R:function leak (its result may be a masked value) in WHERE (strict)" },
	{ "select x from customers c, generate_series(1, length(c.ssn)) x", S,
	  "R:masked column ops.customers.ssn in a function in FROM (strict)" },
	{ "select id from customer_v where id = 1", S,
	  "R:view ops.customer_v (masked column ops.customers.ssn) in WHERE (strict)" },
	{ "explain select * from customers where ssn = '1'", S,
	  "R:masked column ops.customers.ssn in WHERE (strict)" },
	{ "select id from customers c where c.id in (select cid from orders)", S, "C" },
	{ "do $$ begin end $$", S, "R:DO: what a DO block reads and prints cannot be followed by masking" },
	{ "copy customers to stdout", S,
	  "R:masked column ops.customers.ssn in COPY customers TO (COPY data is not masked)" },
};

static void corpus(void **state)
{
	size_t bad = 0;

	(void)state;
	assert_true(ARRAY_SIZE(cases) >= 80);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *g = plan(cases[i].sql, cases[i].strict);

		if (strcmp(g, cases[i].want) != 0) {
			print_error("%s%s\n  want %s\n  got  %s\n", cases[i].sql,
				    cases[i].strict ? " (strict)" : "", cases[i].want, g);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* ---- mp_method ---- */

static enum mask_method method_of(const char *sql, size_t col)
{
	struct pol_mask m = mask(false);
	struct mask_plans p = { 0 };
	enum mask_method r;

	assert_int_equal(mask_plan(sql, &m, &cat, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.v[0].verdict, MP_MASK);
	r = p.v[0].positional ? mp_method(&m, &p.v[0].columns[col]) : mp_method(&m, &p.v[0].all);
	mask_plans_free(&p);
	return r;
}

static void methods(void **state)
{
	struct pol_mask m = mask(false);
	struct mp_column c = { .tainted = true, .rule = 2 };

	(void)state;
	assert_int_equal(method_of("select ssn from customers", 0), MASK_LAST4);
	assert_int_equal(method_of("select id, email from customers", 1), MASK_EMAIL);
	assert_int_equal(method_of("select \"Tax ID\" from \"People\"", 0), MASK_HASH);
	/* Several rules that agree keep their method; any disagreement, or an
	 * unknown source, is redact. */
	assert_int_equal(method_of("select coalesce(c.ssn, k.pan) from customers c, cards k", 0), MASK_LAST4);
	assert_int_equal(method_of("select coalesce(ssn, email) from customers", 0), MASK_REDACT);
	assert_int_equal(method_of("select c from customers c", 0), MASK_REDACT);
	assert_int_equal(method_of("select leak(1)", 0), MASK_REDACT);
	assert_int_equal(method_of("fetch all from c", 0), MASK_REDACT);
	assert_int_equal(mp_method(&m, &c), MASK_LAST4);
	c.rule = 4; /* out of range: redact, never an index past the rules */
	assert_int_equal(mp_method(&m, &c), MASK_REDACT);
	c = (struct mp_column){ .tainted = false, .rule = 0 };
	assert_int_equal(mp_method(&m, &c), MASK_REDACT);
}

/* ---- texts of several statements, and the catalog ---- */

static void multi_statement(void **state)
{
	struct pol_mask m = mask(false), none = { 0 };

	(void)state;
	assert_string_equal(plan("select 1; select ssn from customers; select email from customers", false),
			    "C | M[0] | M[1]");
	/* What a statement creates is known to the ones after it. */
	assert_string_equal(plan("create view v2 as select ssn from customers; select * from v2; "
				 "select x from ops.v2; select * from other.v3", false),
			    "C | M*0 | M[0] | C");
	assert_string_equal(plan("create view v2 as select id from customers; select * from v2", false),
			    "C | C");
	assert_string_equal(plan("create materialized view mv as select email from customers; "
				 "select * from mv", false),
			    "C | M*1");
	assert_string_equal(plan("create function f2() returns text language sql as $$select 'x'$$; "
				 "select f2(); select pg_catalog.f2()", false),
			    "C | M[a~] | C");
	assert_string_equal(plan("alter view customer_v rename to cv2; select * from cv2; "
				 "alter table ops.cv2 set schema public; select a from public.cv2", false),
			    "C | M*0 | C | M[0]");
	assert_string_equal(plan("alter view orders_v rename to ov; select * from ov", false), "C | C");
	assert_string_equal(plan("alter function leak(int) rename to l2; select l2(1)", false),
			    "C | M[a~]");
	assert_string_equal(plan("declare c cursor for select ssn from customers; fetch 1 from c; close c",
				 false),
			    "M[0] cursor=c | M*a~ fetch=c | C");
	assert_string_equal(plan("select ssn from customers; do $$ begin end $$", false),
			    "M[0] | R:DO: what a DO block reads and prints cannot be followed by masking");
	assert_string_equal(plan("select 1;;select 2", false), "C | C");
	assert_string_equal(plan("", false), "");
	assert_string_equal(plan("-- nothing", false), "");
	/* No catalog: views and functions are not known; rules still are. */
	assert_string_equal(plan_with("select * from customer_v; select leak(1); select ssn from customers",
				      &m, NULL),
			    "C | C | M[0]");
	/* No rules: nothing is in scope. */
	assert_string_equal(plan_with("select ssn from customers; copy customers to stdout", &none, NULL),
			    "C | C");
	assert_string_equal(plan_with("select ssn from customers", NULL, NULL), "C");
}

static void parse_errors(void **state)
{
	static const char *const bad[] = {
		"selec ssn from customers",
		"select ssn from customers; selec",
		"select 'unterminated",
		"select from where",
		"select ssn from customers where (",
	};
	struct pol_mask m = mask(false);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct mask_plans p = { 0 };

		assert_int_equal(mask_plan(bad[i], &m, &cat, &p), 0);
		assert_non_null(p.error);
		assert_int_equal(p.n, 0);
		assert_null(p.v);
		mask_plans_free(&p);
	}
}

/* ---- caps: nesting, passes ---- */

static char *repeat(const char *head, const char *unit, size_t n, const char *mid,
		    const char *close, const char *tail)
{
	size_t lu = strlen(unit), lc = strlen(close);
	size_t len = strlen(head) + n * (lu + lc) + strlen(mid) + strlen(tail) + 1;
	char *s = malloc(len), *p = s;

	assert_non_null(s);
	p += sprintf(p, "%s", head);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s", unit);
	p += sprintf(p, "%s", mid);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s", close);
	sprintf(p, "%s", tail);
	return s;
}

static void caps(void **state)
{
	struct pol_mask m = mask(false);
	struct mask_plans p = { 0 };
	char *s, *q;
	size_t n;

	(void)state;
	/* Deep but within the caps: followed to the bottom. */
	s = repeat("select ", "upper(", 2000, "ssn", ")", " from customers");
	assert_string_equal(plan(s, false), "M[0]");
	free(s);
	/* Deeper than the walk goes: no plan, an error (the agent refuses). */
	s = repeat("select ", "upper(", 6000, "ssn", ")", " from customers");
	assert_int_equal(mask_plan(s, &m, &cat, &p), 0);
	assert_non_null(p.error);
	assert_int_equal(p.n, 0);
	mask_plans_free(&p);
	free(s);
	/* Names tainted backwards, one CTE per pass: 10 converge... */
	s = malloc(64 * 1024);
	assert_non_null(s);
	for (size_t k = 0; k < 2; k++) {
		size_t ctes = k ? 40 : 10;

		q = s;
		q += sprintf(q, "with recursive ");
		for (n = 1; n < ctes; n++)
			q += sprintf(q, "a%zu(x%zu) as (select x%zu from a%zu), ", n, n, n + 1, n + 1);
		q += sprintf(q, "a%zu(x%zu) as (select ssn from customers) select x1, 1 from a1", n, n);
		/* ...40 do not: every name is then tainted (fail closed). */
		assert_string_equal(plan(s, false), k ? "M[a~,-]" : "M[0,-]");
	}
	free(s);
	/* Too long to plan. */
	n = (16u << 20) + 16;
	s = malloc(n + 1);
	assert_non_null(s);
	memset(s, ' ', n);
	memcpy(s, "select 1", 8);
	s[n] = '\0';
	assert_int_equal(mask_plan(s, &m, &cat, &p), 0);
	assert_non_null(p.error);
	assert_int_equal(p.n, 0);
	mask_plans_free(&p);
	free(s);
}

/* ---- random mutations: never a crash ---- */

/* MASKPLAN_SEED=N repeats a run. */
static unsigned seed_of(unsigned fallback)
{
	const char *e = getenv("MASKPLAN_SEED");

	return e && *e ? (unsigned)strtoul(e, NULL, 10) : fallback;
}

static void check_plans(const struct mask_plans *p)
{
	if (p->error)
		assert_int_equal(p->n, 0);
	for (size_t j = 0; j < p->n; j++) {
		const struct mask_plan *x = &p->v[j];

		assert_true(x->verdict == MP_CLEAN || x->verdict == MP_MASK || x->verdict == MP_REFUSE);
		assert_true((x->verdict == MP_REFUSE) == (x->why != NULL));
		assert_true(x->n_columns == 0 || x->columns);
		for (size_t k = 0; k < x->n_columns; k++)
			assert_true(!x->columns[k].tainted || x->columns[k].rule == MP_RULE_ANY ||
				    (size_t)x->columns[k].rule < ARRAY_SIZE(rules));
	}
}

static void mutations(void **state)
{
	unsigned seed = seed_of((unsigned)time(NULL));
	size_t errors = 0, planned = 0;
	char buf[1024];

	(void)state;
	print_message("mutation seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < 5000; i++) {
		const struct mp_case *a = &cases[(size_t)rand() % ARRAY_SIZE(cases)];
		const char *b = cases[(size_t)rand() % ARRAY_SIZE(cases)].sql;
		size_t n = strlen(a->sql), edits = 1 + (size_t)rand() % 3;
		struct pol_mask m = mask(rand() % 2);
		struct mask_plans p = { 0 };

		memcpy(buf, a->sql, n + 1);
		for (size_t e = 0; e < edits; e++) {
			size_t at = n ? (size_t)rand() % n : 0, k;

			switch (rand() % 7) {
			case 5: /* another statement as a subquery, at a word's start */
			case 6:
				while (at > 0 && buf[at - 1] != ' ')
					at--;
				k = strlen(b) + 3;
				if (n + k < sizeof(buf)) {
					memmove(buf + at + k, buf + at, n - at + 1);
					buf[at] = '(';
					memcpy(buf + at + 1, b, k - 3);
					memcpy(buf + at + k - 2, ") ", 2);
					n += k;
				}
				break;
			case 0: /* any byte but NUL */
				if (n)
					buf[at] = (char)(1 + rand() % 255);
				break;
			case 1: /* delete a run */
				k = (size_t)rand() % 8; /* MIN() evaluates twice */
				k = MIN(n - at, k);
				memmove(buf + at, buf + at + k, n - at - k + 1);
				n -= k;
				break;
			case 2: /* splice in part of another statement */
				k = MIN(strlen(b), sizeof(buf) - n - 1);
				k = k ? (size_t)rand() % (k + 1) : 0;
				memmove(buf + at + k, buf + at, n - at + 1);
				memcpy(buf + at, b, k);
				n += k;
				break;
			case 3: { /* a token that matters */
				static const char *const toks[] = {
					";", "(", ")", "*", ".*", ",", " c ", " union ", " from customers ",
					" returning * ", " where ssn ", "\"", "'", "$$", " as x ",
				};
				const char *t = toks[(size_t)rand() % ARRAY_SIZE(toks)];

				k = strlen(t);
				if (n + k < sizeof(buf)) {
					memmove(buf + at + k, buf + at, n - at + 1);
					memcpy(buf + at, t, k);
					n += k;
				}
				break;
			}
			default: /* truncate */
				n = at;
				buf[n] = '\0';
			}
		}
		assert_int_equal(mask_plan(buf, &m, &cat, &p), 0);
		check_plans(&p);
		errors += p.error != NULL;
		planned += p.n;
		mask_plans_free(&p);
	}
	print_message("5000 mutations: %zu parse errors, %zu statements planned\n", errors, planned);
}

/* The walk over trees the parser never writes: libpg_query's JSON for the
 * corpus with bytes changed. The reader refuses or the walk finishes. */
static void tree_mutations(void **state)
{
	static const char alphabet[] = "{}[]\":,0aZ_ \\";
	unsigned seed = seed_of((unsigned)time(NULL) ^ 0x6d61736bu);
	size_t refused = 0, walked = 0;

	(void)state;
	print_message("tree mutation seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < 3000; i++) {
		PgQueryParseResult res = pg_query_parse(cases[(size_t)rand() % ARRAY_SIZE(cases)].sql);
		struct pol_mask m = mask(rand() % 2);
		struct mask_plans p = { 0 };
		size_t n;
		char *j;
		int r;

		assert_null(res.error);
		j = res.parse_tree;
		n = strlen(j);
		for (int e = 0, edits = 1 + rand() % 4; e < edits; e++) {
			size_t at = (size_t)rand() % n;

			if (rand() % 3 == 0) { /* rename a node type: what does the walk do with an unknown one? */
				char *q = strstr(j + at, "\":{\"");

				if (q)
					for (char *t = q - 1; t > j && *t != '"'; t--)
						if (*t >= 'a' && *t <= 'z') {
							*t = 'q';
							break;
						}
			} else {
				j[at] = alphabet[(size_t)rand() % (sizeof(alphabet) - 1)];
			}
		}
		r = mp_plan_json(j, &m, &cat, &p);
		assert_true(r == 0 || r == -EINVAL || r == -E2BIG);
		if (r == 0) {
			check_plans(&p);
			walked++;
		} else {
			assert_null(p.v);
			refused++;
		}
		mask_plans_free(&p);
		pg_query_free_parse_result(res);
	}
	print_message("3000 tree mutations: %zu refused, %zu walked\n", refused, walked);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus),
		cmocka_unit_test(methods),
		cmocka_unit_test(multi_statement),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(caps),
		cmocka_unit_test(mutations),
		cmocka_unit_test(tree_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
