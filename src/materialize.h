/* materialize.h — builds models in ClickHouse (view, table, incremental with append or
 * delete+insert) one statement per request, publishing each atomically so that a failed
 * model leaves the previous relation readable, and runs schema tests (unique, not_null,
 * accepted_values, relationships) as counting queries. The SQL shapes are pure functions
 * here; the tasks drive them through ch_client on the loop. */
#ifndef ELTD_MATERIALIZE_H
#define ELTD_MATERIALIZE_H

#include "dag.h"
#include "load.h"
#include "models.h"

/* Temporary relations next to a model's: <name>__eltd_tmp (views), __eltd_new (tables),
 * __eltd_old (the previous table while it is swapped out). */
#define MATERIALIZE_TMP_SUFFIX "__eltd_tmp"

extern const dag_task_ops_t materialize_model_ops;
extern const dag_task_ops_t materialize_test_ops;

/* Task impls; p must outlive the tasks. NULL on out-of-memory. */
void *materialize_model_task_new(load_env_t *env, const models_project_t *p, size_t model);
void *materialize_test_task_new(load_env_t *env, const models_project_t *p, size_t test);

/* `CREATE TABLE <relation> ENGINE = ... [PARTITION BY] ORDER BY ... [PRIMARY KEY]
 * [SETTINGS] AS <sql>`, malloc'd. */
char *materialize_create_table_sql(const models_config_t *c, const char *relation, const char *sql);
/* The statement that counts a test's failing rows, malloc'd. */
char *materialize_test_sql(const models_project_t *p, const models_test_t *t);
/* "unique(order_item_id)", "relationships(customer_id -> stg_customers.customer_id)". */
char *materialize_test_label(const models_project_t *p, const models_test_t *t);
/* The model's SQL without trailing blanks and semicolons, malloc'd. */
char *materialize_strip_sql(const char *sql);

#endif
