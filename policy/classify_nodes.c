/* What each node type of the parse tree means: classes, the relation it
 * writes, the settings it changes. See classify_walk.h. */
#include "config.h"
#include "policy/classify_walk.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The flags a setting of unknown name may change. */
#define SQLF_SETTINGS (SQLF_SETS_SCS | SQLF_SETS_SEARCH_PATH | SQLF_READ_WRITE)

/* ---- settings ----------------------------------------------------------- */

static void setting(struct walk *w, const char *name)
{
	if (!name) { /* RESET ALL (role and session_authorization are not reset) */
		cw_add(w, B(CONFIG_CHANGE));
		cw_flag(w, SQLF_SETTINGS);
		return;
	}
	if (strcasecmp(name, "role") == 0 || strcasecmp(name, "session_authorization") == 0) {
		cw_add(w, B(ROLE_CHANGE));
		return;
	}
	cw_add(w, B(CONFIG_CHANGE));
	if (strcasecmp(name, "standard_conforming_strings") == 0)
		cw_flag(w, SQLF_SETS_SCS);
	else if (strcasecmp(name, "search_path") == 0)
		cw_flag(w, SQLF_SETS_SEARCH_PATH);
	else if (strcasecmp(name, "default_transaction_read_only") == 0 ||
		 strcasecmp(name, "transaction_read_only") == 0)
		cw_flag(w, SQLF_READ_WRITE);
}

static void dynamic_setting(struct walk *w)
{
	cw_add(w, B(CONFIG_CHANGE) | B(ROLE_CHANGE));
	cw_flag(w, SQLF_DYNAMIC_SETTING | SQLF_SETTINGS);
}

/* Transaction modes (BEGIN, SET TRANSACTION, ...): READ ONLY is the only
 * mode the grammar writes as transaction_read_only = 1; anything else
 * there leaves read-only. */
static bool leaves_read_only(const struct walk *w, const struct sj_node *options)
{
	if (!options || options->type != SJ_ARRAY)
		return false;
	for (const struct sj_node *m = sj_first(w->d, options); m; m = sj_next(w->d, m)) {
		const struct sj_node *de = cw_node_of(w, m, "DefElem"), *c;
		uint32_t v;

		if (!de || !cw_streq(cw_get_str(w, de, "defname"), "transaction_read_only"))
			continue;
		c = cw_node_of(w, cw_get(w, de, "arg"), "A_Const");
		if (!c || !sj_uint32(cw_get(w, cw_get(w, c, "ival"), "ival"), &v) || v != 1)
			return true;
	}
	return false;
}

/* ---- node handlers ---------------------------------------------------------- */

/* set_config(name, value, is_local): the name decides, when it is a
 * string constant (possibly cast). */
static void set_config_call(struct walk *w, const struct sj_node *fc)
{
	const struct sj_node *args = cw_get(w, fc, "args"), *c, *cast;
	const char *name = NULL;

	c = args && args->type == SJ_ARRAY ? sj_first(w->d, args) : NULL;
	if ((cast = cw_node_of(w, c, "TypeCast")))
		c = cw_get(w, cast, "arg");
	if ((c = cw_node_of(w, c, "A_Const")))
		name = cw_get_str(w, cw_get(w, c, "sval"), "sval");
	if (name)
		setting(w, name);
	else
		dynamic_setting(w);
}

/* What calling a function of this bare name with nargs arguments does
 * besides reading (a same-named function in another schema is judged as
 * the built-in would be). set_config is the caller's. */
void cw_func_effects(struct walk *w, const char *name, size_t nargs)
{
	/* Built-ins that change data. */
	static const char *const writes[] = {
		"nextval", "setval", "lo_create", "lo_creat", "lo_unlink", "lo_import", "lowrite",
		"lo_put", "lo_from_bytea", "lo_truncate", "lo_truncate64", "pg_notify",
	};
	/* Built-ins that run SQL given as text or read whole tables and
	 * schemas by name: what they do cannot be read from the statement. */
	static const char *const run_sql[] = {
		"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
		"table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
		"schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
		"database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
		"ts_stat",
	};

	if (cw_in_list(name, writes, ARRAY_SIZE(writes)))
		cw_add(w, B(WRITE));
	else if (cw_in_list(name, run_sql, ARRAY_SIZE(run_sql)) ||
		 (strcmp(name, "ts_rewrite") == 0 && nargs == 2))
		cw_add(w, B(OPAQUE));
}

static void h_func_call(struct walk *w, const struct sj_node *fc)
{
	const struct sj_node *args = cw_get(w, fc, "args");
	const char *nm[4], *name;
	int k = cw_names(w, cw_get(w, fc, "funcname"), nm, 4);

	if (k < 1) { /* no name we can read: fail closed */
		cw_add(w, B(OPAQUE));
		return;
	}
	name = nm[k - 1];
	cw_add_fn(w, k >= 2 ? nm[k - 2] : NULL, name);
	if (strcmp(name, "set_config") == 0)
		set_config_call(w, fc);
	else
		cw_func_effects(w, name, args && args->type == SJ_ARRAY ? args->len : 0);
}

static void h_lock_rows(struct walk *w, const struct sj_node *b)
{
	(void)b;
	cw_add(w, B(WRITE)); /* SELECT ... FOR UPDATE/SHARE locks rows */
}

static void h_alter_table_cmd(struct walk *w, const struct sj_node *b)
{
	const char *sub = cw_get_str(w, b, "subtype");

	if (cw_streq(sub, "AT_ChangeOwner"))
		cw_add(w, B(ROLE_CHANGE));
	else if (cw_streq(sub, "AT_DropColumn"))
		cw_add(w, B(DROP));
}

static void h_create_table_as(struct walk *w, const struct sj_node *b)
{
	cw_mark_written(w, cw_get(w, cw_get(w, b, "into"), "rel"));
}

static void h_delete(struct walk *w, const struct sj_node *b)
{
	if (!cw_get(w, b, "whereClause")) /* WHERE CURRENT OF is a WHERE too */
		cw_add(w, B(DELETE_WITHOUT_WHERE));
}

static void h_update(struct walk *w, const struct sj_node *b)
{
	if (!cw_get(w, b, "whereClause"))
		cw_add(w, B(UPDATE_WITHOUT_WHERE));
}

static void h_copy(struct walk *w, const struct sj_node *b)
{
	if (cw_get_true(w, b, "is_from")) {
		cw_add(w, B(COPY_IN) | B(WRITE));
		cw_mark_written(w, cw_get(w, b, "relation"));
	} else {
		cw_add(w, B(COPY_OUT) | B(READ));
	}
	if (cw_get_true(w, b, "is_program") || cw_get(w, b, "filename"))
		cw_add(w, B(COPY_PROGRAM));
}

static bool explain_analyzes(const struct walk *w, const struct sj_node *options)
{
	bool analyze = false;

	if (!options || options->type != SJ_ARRAY)
		return false;
	/* Any ANALYZE not plainly off: a repeated option or a value we do not
	 * read (ANALYZE 0) counts as on. */
	for (const struct sj_node *m = sj_first(w->d, options); m; m = sj_next(w->d, m)) {
		const struct sj_node *de = cw_node_of(w, m, "DefElem"), *arg;
		const char *name = cw_get_str(w, de, "defname"), *v;

		if (!name || strcasecmp(name, "analyze") != 0)
			continue;
		arg = cw_get(w, de, "arg");
		v = arg ? cw_string_node(w, arg) : NULL;
		if (!arg || !v || (strcasecmp(v, "false") != 0 && strcasecmp(v, "off") != 0))
			analyze = true;
	}
	return analyze;
}

static void h_explain(struct walk *w, const struct sj_node *b)
{
	bool analyze = explain_analyzes(w, cw_get(w, b, "options"));

	/* Without ANALYZE nothing it explains runs. */
	if (!analyze)
		w->dry++;
	cw_walk(w, cw_get(w, b, "query"));
	if (!analyze)
		w->dry--;
}

static void h_set(struct walk *w, const struct sj_node *b)
{
	const char *kind = cw_get_str(w, b, "kind"), *name = cw_get_str(w, b, "name");

	if (cw_streq(kind, "VAR_RESET_ALL")) {
		setting(w, NULL);
	} else if (!kind || !name) {
		dynamic_setting(w);
	} else if (strcmp(kind, "VAR_SET_MULTI") == 0) {
		/* SET TRANSACTION / SESSION CHARACTERISTICS / TRANSACTION SNAPSHOT */
		cw_add(w, B(CONFIG_CHANGE));
		if (leaves_read_only(w, cw_get(w, b, "args")))
			cw_flag(w, SQLF_READ_WRITE);
	} else {
		setting(w, name);
	}
}

/* ALTER SYSTEM / ROLE / DATABASE ... SET: the embedded SET. */
static void h_set_for(struct walk *w, const struct sj_node *b)
{
	h_set(w, cw_get(w, b, "setstmt"));
}

static void h_transaction(struct walk *w, const struct sj_node *b)
{
	static const char *const two_phase[] = {
		"TRANS_STMT_PREPARE", "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED",
	};
	const char *kind = cw_get_str(w, b, "kind");

	/* Two-phase commit outlives the session and the connection. */
	cw_add(w, kind && cw_in_list(kind, two_phase, ARRAY_SIZE(two_phase)) ? B(ADMIN) : B(READ));
	if (leaves_read_only(w, cw_get(w, b, "options")))
		cw_flag(w, SQLF_READ_WRITE);
}

static void h_discard(struct walk *w, const struct sj_node *b)
{
	if (cw_streq(cw_get_str(w, b, "target"), "DISCARD_ALL")) {
		cw_add(w, B(CONFIG_CHANGE));
		cw_flag(w, SQLF_SETTINGS | SQLF_DEALLOCATE);
	}
}

static void h_prepare(struct walk *w, const struct sj_node *b)
{
	cw_flag(w, SQLF_PREPARE);
	cw_set_name(w, cw_get_str(w, b, "name"));
}

static void h_execute(struct walk *w, const struct sj_node *b)
{
	cw_flag(w, SQLF_EXECUTE);
	cw_set_name(w, cw_get_str(w, b, "name"));
}

static void h_deallocate(struct walk *w, const struct sj_node *b)
{
	cw_flag(w, SQLF_DEALLOCATE);
	cw_set_name(w, cw_get_str(w, b, "name")); /* absent: ALL */
}

static void h_call(struct walk *w, const struct sj_node *b)
{
	const struct sj_node *fc = cw_get(w, b, "funccall");

	if (fc)
		h_func_call(w, fc);
}

/* SECURITY DEFINER among CREATE/ALTER FUNCTION's options: the function
 * runs with its owner's rights. */
static void security_definer(struct walk *w, const struct sj_node *options)
{
	if (!options || options->type != SJ_ARRAY)
		return;
	for (const struct sj_node *m = sj_first(w->d, options); m; m = sj_next(w->d, m)) {
		const struct sj_node *de = cw_node_of(w, m, "DefElem"), *bv;

		if (!de || !cw_streq(cw_get_str(w, de, "defname"), "security"))
			continue;
		bv = cw_node_of(w, cw_get(w, de, "arg"), "Boolean");
		if (!bv || cw_get_true(w, bv, "boolval"))
			cw_add(w, B(ROLE_CHANGE));
	}
}

static void h_create_function(struct walk *w, const struct sj_node *b)
{
	security_definer(w, cw_get(w, b, "options"));
}

static void h_alter_function(struct walk *w, const struct sj_node *b)
{
	cw_add_qualified(w, cw_get(w, cw_get(w, b, "func"), "objname"));
	security_definer(w, cw_get(w, b, "actions"));
}

static void h_alter_operator(struct walk *w, const struct sj_node *b)
{
	cw_add_qualified(w, cw_get(w, cw_get(w, b, "opername"), "objname"));
}

static void h_create_foreign_table(struct walk *w, const struct sj_node *b)
{
	cw_mark_written(w, cw_get(w, cw_get(w, b, "base"), "relation"));
}

static void h_drop(struct walk *w, const struct sj_node *b)
{
	const struct sj_node *objs = cw_get(w, b, "objects");
	const char *type = cw_get_str(w, b, "removeType");

	if (!objs || objs->type != SJ_ARRAY)
		return;
	for (const struct sj_node *m = sj_first(w->d, objs); m; m = sj_next(w->d, m))
		cw_add_object(w, type, m, true);
}

/* COMMENT, SECURITY LABEL, ALTER ... OWNER / SET SCHEMA / DEPENDS ON,
 * ALTER EXTENSION ADD/DROP: one object and its type. */
static void h_object(struct walk *w, const struct sj_node *b)
{
	const char *type = cw_get_str(w, b, "objtype");

	if (!type)
		type = cw_get_str(w, b, "objectType");
	cw_add_object(w, type, cw_get(w, b, "object"), true);
	cw_add_schema(w, cw_get_str(w, b, "newschema"));
}

static void h_rename(struct walk *w, const struct sj_node *b)
{
	const char *type = cw_get_str(w, b, "renameType");

	cw_add_object(w, type, cw_get(w, b, "object"), true);
	if (cw_streq(type, "OBJECT_SCHEMA")) {
		cw_add_schema(w, cw_get_str(w, b, "subname"));
		cw_add_schema(w, cw_get_str(w, b, "newname"));
	} else if (cw_streq(type, "OBJECT_ROLE")) {
		cw_add(w, B(ROLE_CHANGE));
	} else if (cw_streq(type, "OBJECT_DATABASE") || cw_streq(type, "OBJECT_TABLESPACE")) {
		cw_add(w, B(ADMIN));
	}
}

static void h_grant(struct walk *w, const struct sj_node *b)
{
	const struct sj_node *objs = cw_get(w, b, "objects");
	const char *type = cw_get_str(w, b, "objtype");
	bool in_schema = cw_streq(cw_get_str(w, b, "targtype"), "ACL_TARGET_ALL_IN_SCHEMA");

	if (!objs || objs->type != SJ_ARRAY)
		return;
	for (const struct sj_node *m = sj_first(w->d, objs); m; m = sj_next(w->d, m))
		if (in_schema)
			cw_add_schema(w, cw_string_node(w, m));
		else
			cw_add_object(w, type, m, false); /* tables come as RangeVars */
}

/* A DefElem's list of names into schemas (ALTER DEFAULT PRIVILEGES IN
 * SCHEMA, CREATE EXTENSION ... SCHEMA). */
static void option_schemas(struct walk *w, const struct sj_node *options, const char *defname)
{
	if (!options || options->type != SJ_ARRAY)
		return;
	for (const struct sj_node *m = sj_first(w->d, options); m; m = sj_next(w->d, m)) {
		const struct sj_node *de = cw_node_of(w, m, "DefElem"), *arg, *list;

		if (!de || !cw_streq(cw_get_str(w, de, "defname"), defname))
			continue;
		arg = cw_get(w, de, "arg");
		cw_add_schema(w, cw_string_node(w, arg));
		list = cw_node_of(w, arg, "List");
		for (const struct sj_node *s = sj_first(w->d, cw_get(w, list, "items")); s;
		     s = sj_next(w->d, s))
			cw_add_schema(w, cw_string_node(w, s));
	}
}

static void h_default_privileges(struct walk *w, const struct sj_node *b)
{
	option_schemas(w, cw_get(w, b, "options"), "schemas");
}

static void h_extension(struct walk *w, const struct sj_node *b)
{
	option_schemas(w, cw_get(w, b, "options"), "schema");
}

static void h_create_schema(struct walk *w, const struct sj_node *b)
{
	cw_add_schema(w, cw_get_str(w, b, "schemaname"));
	/* CREATE SCHEMA ... AUTHORIZATION r: owned by another role. */
	if (cw_get(w, b, "authrole"))
		cw_add(w, B(ROLE_CHANGE));
}

static void h_import_foreign_schema(struct walk *w, const struct sj_node *b)
{
	cw_add_schema(w, cw_get_str(w, b, "local_schema"));
}

static void h_reindex(struct walk *w, const struct sj_node *b)
{
	if (cw_streq(cw_get_str(w, b, "kind"), "REINDEX_OBJECT_SCHEMA"))
		cw_add_schema(w, cw_get_str(w, b, "name"));
}

/* ---- the node table ------------------------------------------------------ */

/* Sorted by type, one entry each (test_classify checks). */
static const struct node_kind kinds[] = {
	{ "AlterCollationStmt", B(DDL), NULL, "collname", NULL, WALK },
	{ "AlterDatabaseRefreshCollStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "AlterDatabaseSetStmt", B(DDL) | B(ADMIN), NULL, NULL, h_set_for, WALK },
	{ "AlterDatabaseStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "AlterDefaultPrivilegesStmt", B(ROLE_CHANGE), NULL, NULL, h_default_privileges, WALK },
	{ "AlterDomainStmt", B(DDL), NULL, "typeName", NULL, WALK },
	{ "AlterEnumStmt", B(DDL), NULL, "typeName", NULL, WALK },
	{ "AlterEventTrigStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "AlterExtensionContentsStmt", B(DDL), NULL, NULL, h_object, WALK },
	{ "AlterExtensionStmt", B(DDL) | B(OPAQUE), NULL, NULL, NULL, WALK },
	{ "AlterFdwStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "AlterForeignServerStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "AlterFunctionStmt", B(DDL), NULL, NULL, h_alter_function, WALK_DRY },
	{ "AlterObjectDependsStmt", B(DDL), "relation", NULL, h_object, WALK },
	{ "AlterObjectSchemaStmt", B(DDL), "relation", NULL, h_object, WALK },
	{ "AlterOpFamilyStmt", B(DDL), NULL, "opfamilyname", NULL, WALK },
	{ "AlterOperatorStmt", B(DDL), NULL, NULL, h_alter_operator, WALK },
	{ "AlterOwnerStmt", B(DDL) | B(ROLE_CHANGE), "relation", NULL, h_object, WALK },
	{ "AlterPolicyStmt", B(DDL), "table", NULL, NULL, WALK_DRY },
	{ "AlterPublicationStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "AlterRoleSetStmt", B(DDL) | B(ROLE_CHANGE), NULL, NULL, h_set_for, WALK },
	{ "AlterRoleStmt", B(DDL) | B(ROLE_CHANGE), NULL, NULL, NULL, WALK },
	{ "AlterSeqStmt", B(DDL), "sequence", NULL, NULL, WALK },
	{ "AlterStatsStmt", B(DDL), NULL, "defnames", NULL, WALK },
	{ "AlterSubscriptionStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "AlterSystemStmt", B(ADMIN) | B(CONFIG_CHANGE), NULL, NULL, h_set_for, WALK },
	{ "AlterTSConfigurationStmt", B(DDL), NULL, "cfgname", NULL, WALK },
	{ "AlterTSDictionaryStmt", B(DDL), NULL, "dictname", NULL, WALK },
	{ "AlterTableCmd", 0, NULL, NULL, h_alter_table_cmd, WALK },
	{ "AlterTableMoveAllStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "AlterTableSpaceOptionsStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "AlterTableStmt", B(DDL), "relation", NULL, NULL, WALK },
	{ "AlterTypeStmt", B(DDL), NULL, "typeName", NULL, WALK },
	{ "AlterUserMappingStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CallStmt", B(OPAQUE), NULL, NULL, h_call, WALK },
	{ "CheckPointStmt", B(ADMIN), NULL, NULL, NULL, WALK },
	{ "ClosePortalStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "ClusterStmt", B(ADMIN), NULL, NULL, NULL, WALK },
	{ "CommentStmt", B(DDL), NULL, NULL, h_object, WALK },
	{ "CompositeTypeStmt", B(DDL), "typevar", NULL, NULL, WALK },
	{ "ConstraintsSetStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "CopyStmt", 0, NULL, NULL, h_copy, WALK },
	{ "CreateAmStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateCastStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateConversionStmt", B(DDL), NULL, "conversion_name", NULL, WALK },
	{ "CreateDomainStmt", B(DDL), NULL, "domainname", NULL, WALK_DRY },
	{ "CreateEnumStmt", B(DDL), NULL, "typeName", NULL, WALK },
	{ "CreateEventTrigStmt", B(DDL) | B(OPAQUE), NULL, NULL, NULL, WALK_DRY },
	{ "CreateExtensionStmt", B(DDL) | B(OPAQUE), NULL, NULL, h_extension, WALK },
	{ "CreateFdwStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateForeignServerStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateForeignTableStmt", B(DDL), NULL, NULL, h_create_foreign_table, WALK_DRY },
	{ "CreateFunctionStmt", B(DDL) | B(OPAQUE), NULL, "funcname", h_create_function, WALK_DRY },
	{ "CreateOpClassStmt", B(DDL), NULL, "opclassname", NULL, WALK },
	{ "CreateOpFamilyStmt", B(DDL), NULL, "opfamilyname", NULL, WALK },
	{ "CreatePLangStmt", B(DDL) | B(OPAQUE), NULL, NULL, NULL, WALK },
	{ "CreatePolicyStmt", B(DDL), "table", NULL, NULL, WALK_DRY },
	{ "CreatePublicationStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateRangeStmt", B(DDL), NULL, "typeName", NULL, WALK },
	{ "CreateRoleStmt", B(DDL) | B(ROLE_CHANGE), NULL, NULL, NULL, WALK },
	{ "CreateSchemaStmt", B(DDL), NULL, NULL, h_create_schema, WALK },
	{ "CreateSeqStmt", B(DDL), "sequence", NULL, NULL, WALK },
	{ "CreateStatsStmt", B(DDL), NULL, "defnames", NULL, WALK },
	{ "CreateStmt", B(DDL), "relation", NULL, NULL, WALK_DRY },
	{ "CreateSubscriptionStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "CreateTableAsStmt", B(DDL) | B(WRITE), NULL, NULL, h_create_table_as, WALK },
	{ "CreateTableSpaceStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "CreateTransformStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreateTrigStmt", B(DDL) | B(OPAQUE), "relation", NULL, NULL, WALK_DRY },
	{ "CreateUserMappingStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "CreatedbStmt", B(DDL) | B(ADMIN), NULL, NULL, NULL, WALK },
	{ "DeallocateStmt", B(READ), NULL, NULL, h_deallocate, WALK },
	{ "DeclareCursorStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "DefineStmt", B(DDL), NULL, "defnames", NULL, WALK },
	{ "DeleteStmt", B(READ) | B(WRITE), "relation", NULL, h_delete, WALK },
	{ "DiscardStmt", B(READ), NULL, NULL, h_discard, WALK },
	{ "DoStmt", B(OPAQUE), NULL, NULL, NULL, WALK },
	{ "DropOwnedStmt", B(ROLE_CHANGE) | B(DDL) | B(DROP), NULL, NULL, NULL, WALK },
	{ "DropRoleStmt", B(ROLE_CHANGE) | B(DDL) | B(DROP), NULL, NULL, NULL, WALK },
	{ "DropStmt", B(DROP) | B(DDL), NULL, NULL, h_drop, WALK },
	{ "DropSubscriptionStmt", B(DDL) | B(ADMIN) | B(DROP), NULL, NULL, NULL, WALK },
	{ "DropTableSpaceStmt", B(DDL) | B(ADMIN) | B(DROP), NULL, NULL, NULL, WALK },
	{ "DropUserMappingStmt", B(DDL) | B(DROP), NULL, NULL, NULL, WALK },
	{ "DropdbStmt", B(DDL) | B(ADMIN) | B(DROP), NULL, NULL, NULL, WALK },
	{ "ExecuteStmt", B(READ), NULL, NULL, h_execute, WALK },
	{ "ExplainStmt", B(READ), NULL, NULL, h_explain, WALK_NONE },
	{ "FetchStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "FuncCall", 0, NULL, NULL, h_func_call, WALK },
	{ "GrantRoleStmt", B(ROLE_CHANGE), NULL, NULL, NULL, WALK },
	{ "GrantStmt", B(ROLE_CHANGE), NULL, NULL, h_grant, WALK },
	{ "ImportForeignSchemaStmt", B(DDL), NULL, NULL, h_import_foreign_schema, WALK },
	{ "IndexStmt", B(DDL), "relation", NULL, NULL, WALK },
	{ "InsertStmt", B(READ) | B(WRITE), "relation", NULL, NULL, WALK },
	{ "ListenStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "LoadStmt", B(ADMIN) | B(CONFIG_CHANGE), NULL, NULL, NULL, WALK },
	{ "LockStmt", B(WRITE), "relations", NULL, NULL, WALK },
	{ "LockingClause", 0, NULL, NULL, h_lock_rows, WALK },
	{ "MergeStmt", B(READ) | B(WRITE), "relation", NULL, NULL, WALK },
	{ "NotifyStmt", B(WRITE), NULL, NULL, NULL, WALK },
	{ "PrepareStmt", 0, NULL, NULL, h_prepare, WALK },
	{ "ReassignOwnedStmt", B(ROLE_CHANGE) | B(DDL), NULL, NULL, NULL, WALK },
	{ "RefreshMatViewStmt", B(WRITE), "relation", NULL, NULL, WALK },
	{ "ReindexStmt", B(ADMIN), NULL, NULL, h_reindex, WALK },
	{ "RenameStmt", B(DDL), "relation", NULL, h_rename, WALK },
	{ "ReplicaIdentityStmt", B(DDL), NULL, NULL, NULL, WALK },
	{ "ReturnStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "RuleStmt", B(DDL) | B(OPAQUE), "relation", NULL, NULL, WALK_DRY },
	{ "SecLabelStmt", B(DDL), NULL, NULL, h_object, WALK },
	{ "SelectStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "TransactionStmt", 0, NULL, NULL, h_transaction, WALK },
	{ "TruncateStmt", B(TRUNCATE) | B(DDL) | B(WRITE), "relations", NULL, NULL, WALK },
	{ "UnlistenStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "UpdateStmt", B(READ) | B(WRITE), "relation", NULL, h_update, WALK },
	{ "VacuumStmt", B(ADMIN), NULL, NULL, NULL, WALK },
	{ "VariableSetStmt", 0, NULL, NULL, h_set, WALK },
	{ "VariableShowStmt", B(READ), NULL, NULL, NULL, WALK },
	{ "ViewStmt", B(DDL), "view", NULL, NULL, WALK_DRY },
};

/* Look-ups by hash: the tree holds a node type every few bytes, most of
 * them expressions the table does not have; a miss mostly lands on an
 * empty slot. Built once. */
#define KIND_SLOTS 512u
_Static_assert(ARRAY_SIZE(kinds) < 255 && ARRAY_SIZE(kinds) * 2 < KIND_SLOTS, "kind slots");
static uint8_t kind_slot[KIND_SLOTS]; /* index into kinds + 1; 0 = empty */
static pthread_once_t kind_once = PTHREAD_ONCE_INIT;

static uint32_t kind_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void kind_index(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		uint32_t slot = kind_hash(kinds[i].type) & (KIND_SLOTS - 1);

		while (kind_slot[slot])
			slot = (slot + 1) & (KIND_SLOTS - 1);
		kind_slot[slot] = (uint8_t)(i + 1);
	}
}

const struct node_kind *cw_kind_find(const char *type)
{
	uint32_t slot = kind_hash(type) & (KIND_SLOTS - 1);

	pthread_once(&kind_once, kind_index);
	for (; kind_slot[slot]; slot = (slot + 1) & (KIND_SLOTS - 1)) {
		const struct node_kind *k = &kinds[kind_slot[slot] - 1];

		if (strcmp(k->type, type) == 0)
			return k;
	}
	return NULL;
}

bool cw_is_statement_type(const char *type)
{
	size_t n = strlen(type);

	return n > 4 && strcmp(type + n - 4, "Stmt") == 0;
}

bool cw_kinds_check(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if ((i > 0 && strcmp(kinds[i - 1].type, kinds[i].type) >= 0) ||
		    cw_kind_find(kinds[i].type) != &kinds[i])
			return false;
	return true;
}
