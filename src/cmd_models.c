/* cmd_models.c — `eltd compile` (each selected model's rendered SQL, dependencies first)
 * and `eltd plan` (the run's DAG in execution order with each task's inputs). Neither
 * talks to a server: they show what `eltd run` with the same options would do. */
#include "cli.h"
#include "models.h"
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_compile(const cli_t *c, config_t *cfg)
{
    run_request_t req;
    if (!cmd_request_from_cli(c, &req))
        return EXIT_CONFIG;
    char err[1024];
    models_project_t p;
    if (!models_load(&p, cfg, req.vars, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        cmd_request_free(&req);
        return EXIT_CONFIG;
    }
    int rc = EXIT_OK;
    models_selection_t sel;
    if (!p.present) {
        fprintf(stderr, "eltd: %s: no dbt project there (models.path)\n", p.dir);
        rc = EXIT_CONFIG;
    } else if (!models_select(&p, (const char *const *)req.select, req.nselect,
                              (const char *const *)req.exclude, req.nexclude, NULL, 0, &sel, err,
                              sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        rc = EXIT_CONFIG;
    } else {
        for (size_t k = 0; k < p.nmodels; k++) {
            size_t i = p.order[k];
            if (i == (size_t)-1 || !sel.models[i])
                continue;
            const models_model_t *m = &p.models[i];
            printf("-- model %s: %s into %s (%s)%s\n", m->name,
                   models_mat_name(m->config.materialized), m->relation, m->path,
                   m->config.materialized == MODELS_INCREMENTAL ? ", is_incremental() false" : "");
            printf("%s\n\n", m->sql);
        }
        models_selection_free(&sel);
    }
    models_free(&p);
    cmd_request_free(&req);
    return rc;
}

static void print_plan(const run_t *r, const size_t *order)
{
    const dag_t *d = r->dag;
    size_t counts[TASK_KIND_N] = {0};
    for (size_t i = 0; i < d->ntasks; i++)
        counts[d->tasks[i]->kind]++;
    printf("plan: %zu tasks (%zu loads, %zu models, %zu tests)\n", d->ntasks,
           counts[TASK_KIND_LOAD], counts[TASK_KIND_MODEL], counts[TASK_KIND_TEST]);
    for (size_t k = 0; k < d->ntasks; k++) {
        const dag_task_t *t = d->tasks[order[k]];
        printf("%3zu  %-44s", k + 1, t->name);
        for (size_t j = 0; j < t->ndeps; j++)
            printf("%s%s", j ? ", " : " <- ", d->tasks[t->deps[j]]->name);
        printf("\n");
    }
}

int cmd_plan(const cli_t *c, config_t *cfg)
{
    run_request_t req;
    if (!cmd_request_from_cli(c, &req))
        return EXIT_CONFIG;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        cmd_request_free(&req);
        return EXIT_RUNTIME;
    }
    char err[1024];
    int rc = EXIT_OK;
    /* No ClickHouse client: the tasks are built, never started. */
    run_t *r = run_new(&loop, cfg, NULL, 0, &req, err, sizeof err);
    cmd_request_free(&req);
    if (!r) {
        fprintf(stderr, "eltd: %s\n", err);
        rc = EXIT_CONFIG;
    } else {
        size_t *order = dag_topo_order(r->dag, err, sizeof err);
        if (!order) {
            fprintf(stderr, "eltd: %s\n", err);
            rc = EXIT_CONFIG;
        } else {
            print_plan(r, order);
        }
        free(order);
        run_free(r, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}
