/* cmd_run.c — `eltd run`: one run on a fresh loop, cancelled cleanly by SIGINT/SIGTERM,
 * ending with a summary table and an exit code from the run's final state. */
#include "ch_client.h"
#include "cli.h"
#include "log.h"
#include "models.h"
#include "run.h"
#include "select.h"
#include "state_lock.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct one_run {
    uv_loop_t *loop;
    run_t *run;
    ch_client_t *ch;
    uv_signal_t sigint, sigterm;
    int exit_code;
} one_run_t;

static void on_signal(uv_signal_t *h, int signum)
{
    one_run_t *o = h->data;
    log_warn("event=signal signal=%d action=cancel_run", signum);
    run_cancel(o->run);
}

static void print_summary(const run_t *r)
{
    printf("\n%-28s %-16s %8s %12s %14s %9s\n", "task", "state", "attempts", "rows", "bytes",
           "seconds");
    for (size_t i = 0; i < r->dag->ntasks; i++) {
        const dag_task_t *t = r->dag->tasks[i];
        double secs = t->finished_at > 0 && t->started_at > 0 ? t->finished_at - t->started_at : 0;
        printf("%-28s %-16s %8d %12lld %14lld %9.3f\n", t->name, dag_state_name(t->state),
               t->attempt, (long long)t->rows, (long long)t->bytes, secs);
        if (t->error[0] && t->state != TASK_SUCCESS)
            printf("    error: %s\n", t->error);
        else if (t->warn)
            printf("    warning: %s\n", t->error);
    }
    printf("run %lld: %s in %.3f s\n", (long long)r->id, run_state_name(r->state),
           r->finished_at - r->started_at);
    fflush(stdout);
}

static void on_client_closed(void *ud)
{
    (void)ud;
}

static void on_run_freed(void *ud)
{
    one_run_t *o = ud;
    ch_client_close(o->ch, on_client_closed, NULL);
    uv_close((uv_handle_t *)&o->sigint, NULL);
    uv_close((uv_handle_t *)&o->sigterm, NULL);
}

static void on_run_done(run_t *r, void *ud)
{
    one_run_t *o = ud;
    print_summary(r);
    o->exit_code = r->state == RUN_SUCCESS     ? EXIT_OK
                   : r->state == RUN_CANCELLED ? EXIT_CANCELLED
                                               : EXIT_RUN_FAILED;
    run_free(r, on_run_freed, o);
}

/* A request with the trigger "cli", --full-refresh, the selection and the vars of the
 * command line (see select.h for the syntax). */
bool cmd_request_from_cli(const cli_t *c, struct run_request *req)
{
    *req = (run_request_t){.full_refresh = c->full_refresh};
    snprintf(req->trigger, sizeof req->trigger, "cli");
    size_t n = 0;
    bool ok = (!c->select || (req->select = select_split(c->select, &req->nselect))) &&
              (!c->exclude || (req->exclude = select_split(c->exclude, &n)));
    req->nexclude = n;
    if (ok && c->vars) {
        char err[512];
        req->vars = models_parse_vars(c->vars, err, sizeof err);
        if (!req->vars) {
            fprintf(stderr, "eltd: %s\n", err);
            ok = false;
        }
    }
    if (!ok)
        cmd_request_free(req);
    return ok;
}

void cmd_request_free(struct run_request *req)
{
    select_split_free(req->select);
    select_split_free(req->exclude);
    json_decref(req->vars);
    req->select = req->exclude = NULL;
    req->vars = NULL;
}

/* The run itself, once the state directory is ours. Frees req. */
static int run_locked(config_t *cfg, run_request_t req)
{
    one_run_t o = {.exit_code = EXIT_RUNTIME};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        cmd_request_free(&req);
        return EXIT_RUNTIME;
    }
    o.loop = &loop;
    char err[1024];
    ch_client_opts_t co;
    load_ch_opts(cfg, &co);
    o.ch = ch_client_new(&loop, &co, err, sizeof err);
    if (!o.ch) {
        fprintf(stderr, "eltd: %s\n", err);
        cmd_request_free(&req);
        uv_loop_close(&loop);
        return EXIT_RUNTIME;
    }
    o.run = run_new(&loop, cfg, o.ch, 1, &req, err, sizeof err);
    cmd_request_free(&req);
    if (!o.run || !run_start(o.run, on_run_done, &o, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        /* Close what was opened so the loop ends clean. */
        if (o.run)
            run_free(o.run, NULL, NULL);
        ch_client_close(o.ch, on_client_closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return EXIT_CONFIG;
    }
    uv_signal_init(&loop, &o.sigint);
    uv_signal_init(&loop, &o.sigterm);
    o.sigint.data = o.sigterm.data = &o;
    uv_signal_start(&o.sigint, on_signal, SIGINT);
    uv_signal_start(&o.sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_warn("event=loop_close_busy");
    return o.exit_code;
}

/* Runs req with the state directory locked. Frees req. */
static int run_exclusive(config_t *cfg, run_request_t req)
{
    /* A daemon or another run on this state directory writes the same warehouse: its
     * temporaries would be dropped as leftovers. Where the directory cannot be made (a
     * workstation without /var/lib/eltd), no daemon uses it either: run unlocked. */
    char err[1024];
    state_lock_t lock;
    state_lock_result_t lr = state_lock_take(&lock, cfg->state_dir, true, "run", err, sizeof err);
    if (lr == STATE_LOCK_BUSY) {
        fprintf(stderr,
                "eltd: %s: one eltd writes a warehouse at a time; trigger the run through the "
                "daemon's API (POST /webhook) or wait until it ends\n",
                err);
        cmd_request_free(&req);
        return EXIT_RUNTIME;
    }
    if (lr == STATE_LOCK_NO_DIR)
        log_debug("msg=\"running without the state directory lock\" reason=%s", log_quote(err));
    int rc = run_locked(cfg, req);
    state_lock_release(&lock);
    return rc;
}

int cmd_run(const cli_t *c, config_t *cfg)
{
    run_request_t req;
    if (!cmd_request_from_cli(c, &req))
        return EXIT_CONFIG;
    return run_exclusive(cfg, req);
}

/* dbt test: the tests of what the selection picks (of every model without one), each
 * selector intersected with resource_type:test. Nothing is loaded or built; the tests read
 * what ClickHouse holds. */
int cmd_test(const cli_t *c, config_t *cfg)
{
    run_request_t req;
    if (!cmd_request_from_cli(c, &req))
        return EXIT_CONFIG;
    size_t n = req.nselect ? req.nselect : 1;
    char **tests = calloc(n + 1, sizeof *tests);
    bool ok = tests != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (tests[i] = req.nselect ? util_asprintf("%s,resource_type:test", req.select[i])
                                     : strdup("resource_type:test")) != NULL;
    if (!ok) {
        fprintf(stderr, "eltd: out of memory\n");
        select_split_free(tests);
        cmd_request_free(&req);
        return EXIT_RUNTIME;
    }
    select_split_free(req.select);
    req.select = tests;
    req.nselect = n;
    return run_exclusive(cfg, req);
}
