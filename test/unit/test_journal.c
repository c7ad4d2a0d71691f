/* test_journal.c — the run-history journal against real files in a temporary directory:
 * round trip, torn and corrupt lines, duplicate keys, short writes, compaction, and the
 * atomic replace of small state files. */
#include "journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    char root[64];   /* temporary directory removed after each test */
    char state[128]; /* root/state: the state directory under test */
    char path[160];  /* state/runs.jsonl */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->root, sizeof fx->root, "/tmp/eltd-test-journal-XXXXXX");
    if (!mkdtemp(fx->root))
        return -1;
    snprintf(fx->state, sizeof fx->state, "%s/state", fx->root);
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->state, JOURNAL_FILE_NAME);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->root);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void expect_file(const char *path, const char *want)
{
    char *got = read_file(path);
    assert_string_equal(got, want);
    free(got);
}

/* Collects what replay hands over, with line numbers. */
typedef struct {
    json_t *records;
    size_t lines[64];
    size_t refuse_at; /* refuse the record on this line; 0 never */
} collected_t;

static bool on_record(json_t *record, size_t line, void *ud, char *err, size_t errlen)
{
    collected_t *c = ud;
    if (line == c->refuse_at) {
        snprintf(err, errlen, "run id already seen");
        return false;
    }
    c->lines[json_array_size(c->records)] = line;
    assert_int_equal(json_array_append(c->records, record), 0);
    return true;
}

static json_t *replay_ok(fixture_t *fx)
{
    collected_t c = {.records = json_array()};
    char err[512] = "";
    bool ok = journal_replay(fx->state, on_record, &c, err, sizeof err);
    if (!ok)
        print_message("replay failed: %s\n", err);
    assert_true(ok);
    for (size_t i = 0; i < json_array_size(c.records); i++)
        assert_int_equal(c.lines[i], i + 1);
    return c.records;
}

static void make_state_dir(fixture_t *fx)
{
    assert_int_equal(mkdir(fx->state, 0700), 0);
}

static void append(journal_t *j, const char *json_text)
{
    json_error_t jerr;
    json_t *rec = json_loads(json_text, 0, &jerr);
    assert_non_null(rec);
    char err[512] = "";
    bool ok = journal_append(j, rec, err, sizeof err);
    if (!ok)
        print_message("append failed: %s\n", err);
    assert_true(ok);
    json_decref(rec);
}

static void test_missing_and_empty(void **state)
{
    fixture_t *fx = *state;
    json_t *recs = replay_ok(fx); /* no directory at all */
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);

    /* journal_open creates nested directories, mode 0700, and a 0600 file. */
    char nested[200];
    snprintf(nested, sizeof nested, "%s/a/b", fx->state);
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, nested, err, sizeof err));
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(fx->state, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(j.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 0);
    assert_true(fcntl(j.fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(j.fd, F_GETFL) & O_APPEND);
    journal_close(&j);
    journal_close(&j); /* closing twice is harmless */

    strcpy(fx->state, nested);
    recs = replay_ok(fx); /* empty file */
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);

    /* A file where the state directory should be is refused with its path. */
    char file_as_dir[220];
    snprintf(file_as_dir, sizeof file_as_dir, "%s/runs.jsonl", nested);
    assert_false(journal_open(&j, file_as_dir, err, sizeof err));
    assert_non_null(strstr(err, file_as_dir));
    assert_null(j.path);
    assert_int_equal(j.fd, -1);
}

static void test_round_trip(void **state)
{
    fixture_t *fx = *state;
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"type\":\"run\",\"id\":1,\"state\":\"running\"}");
    append(&j, "{\"type\":\"run\",\"id\":1,\"state\":\"failed\",\"reason\":\"line one\\nline "
               "two \\\"quoted\\\" caf\\u00e9\"}");
    append(&j, "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":1700000000}");
    journal_close(&j);
    /* A restart: appending resumes after what is there. */
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"type\":\"run\",\"id\":2,\"state\":\"success\",\"rows\":12.5}");
    journal_close(&j);

    /* One compact line per record, newlines inside strings escaped. */
    char *text = read_file(fx->path);
    size_t lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);

    json_t *recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 4);
    json_t *want = json_loads(
        "[{\"type\":\"run\",\"id\":1,\"state\":\"running\"},"
        "{\"type\":\"run\",\"id\":1,\"state\":\"failed\",\"reason\":\"line one\\nline two "
        "\\\"quoted\\\" caf\\u00e9\"},"
        "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":1700000000},"
        "{\"type\":\"run\",\"id\":2,\"state\":\"success\",\"rows\":12.5}]",
        0, NULL);
    assert_non_null(want);
    assert_true(json_equal(recs, want));
    json_decref(want);
    json_decref(recs);
}

static void test_append_refusals(void **state)
{
    fixture_t *fx = *state;
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    json_t *arr = json_array();
    assert_false(journal_append(&j, arr, err, sizeof err));
    assert_non_null(strstr(err, "must be a JSON object"));
    json_decref(arr);
    journal_close(&j);
    json_t *obj = json_object();
    assert_false(journal_append(&j, obj, err, sizeof err));
    assert_string_equal(err, "journal is not open");
    json_decref(obj);
    expect_file(fx->path, "");
}

static void test_torn_last_line_skipped_and_truncated(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    const char *good = "{\"type\":\"run\",\"id\":1}\n{\"type\":\"run\",\"id\":2}\n";
    char text[256];
    snprintf(text, sizeof text, "%s{\"type\":\"run\",\"id\":3,\"st", good);
    write_file(fx->path, text);
    json_t *recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 2);
    json_decref(recs);
    expect_file(fx->path, good);

    /* Appending resumes on a clean line. */
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"type\":\"run\",\"id\":3}");
    journal_close(&j);
    recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 3);
    json_decref(recs);

    /* Valid JSON without its newline is still a write that never completed. */
    write_file(fx->path, "{\"a\":1}\n{\"b\":2}");
    recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);
    expect_file(fx->path, "{\"a\":1}\n");
}

static void test_corrupt_last_line_skipped(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    write_file(fx->path, "{\"a\":1}\n{\"a\": tru\n");
    json_t *recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);
    expect_file(fx->path, "{\"a\":1}\n");

    /* Zeros left by a crash before the data reached the disk. */
    FILE *f = fopen(fx->path, "a");
    assert_non_null(f);
    char zeros[40] = {0};
    assert_int_equal(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
    fclose(f);
    recs = replay_ok(fx);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);
    expect_file(fx->path, "{\"a\":1}\n");
}

static void test_open_repairs_unterminated_tail(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    write_file(fx->path, "{\"a\":1}\n{\"a\":2}\n{\"a\"");
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"a\":3}");
    journal_close(&j);
    expect_file(fx->path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");

    write_file(fx->path, "{\"torn");
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    journal_close(&j);
    expect_file(fx->path, "");
}

static void expect_replay_error(fixture_t *fx, size_t line, const char *detail)
{
    collected_t c = {.records = json_array()};
    char err[512] = "";
    assert_false(journal_replay(fx->state, on_record, &c, err, sizeof err));
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:%zu: ", fx->path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, detail))
        print_message("unexpected error: %s\n", err);
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, detail));
    json_decref(c.records);
}

static void test_corrupt_middle_line_is_an_error(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    const char *text = "{\"a\":1}\n{\"a\":2}\n{\"a\": nope}\n{\"a\":4}\n";
    write_file(fx->path, text);
    expect_replay_error(fx, 3, "corrupt journal record: ");
    expect_file(fx->path, text); /* nothing was truncated */

    /* Even when what follows is itself torn. */
    write_file(fx->path, "{\"a\":1}\nxx\n{\"a\"");
    expect_replay_error(fx, 2, "corrupt journal record: ");

    /* An empty line in the middle is not a record either. */
    write_file(fx->path, "{\"a\":1}\n\n{\"a\":2}\n");
    expect_replay_error(fx, 2, "corrupt journal record: ");

    write_file(fx->path, "[1,2]\n{\"a\":2}\n");
    expect_replay_error(fx, 1, "corrupt journal record: not a JSON object");
}

static void test_duplicate_keys_rejected(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    write_file(fx->path, "{\"id\":1,\"id\":2}\n{\"id\":3}\n");
    expect_replay_error(fx, 1, "duplicate object key");
}

static void test_callback_refusal(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    write_file(fx->path, "{\"id\":1}\n{\"id\":1}\n{\"id\":2}\n");
    collected_t c = {.records = json_array(), .refuse_at = 2};
    char err[512] = "";
    assert_false(journal_replay(fx->state, on_record, &c, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "%s:2: run id already seen", fx->path);
    assert_string_equal(err, want);
    assert_int_equal(json_array_size(c.records), 1);
    json_decref(c.records);
}

/* Makes writes past `bytes` fail as on a full disk; restores with bytes == 0. */
static void limit_file_size(rlim_t bytes)
{
    static struct rlimit saved;
    struct rlimit rl;
    if (bytes) {
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        rl = saved;
        rl.rlim_cur = bytes;
    } else {
        rl = saved;
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void test_short_write_is_cut_back(void **state)
{
    fixture_t *fx = *state;
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"a\":1}");
    limit_file_size(8 + 5); /* room for 5 bytes of the next record only */
    json_t *rec = json_pack("{s:s}", "reason", "a record longer than five bytes");
    bool ok = journal_append(&j, rec, err, sizeof err);
    limit_file_size(0);
    assert_false(ok);
    assert_non_null(strstr(err, fx->path));
    json_decref(rec);
    expect_file(fx->path, "{\"a\":1}\n");
    append(&j, "{\"a\":2}");
    journal_close(&j);
    expect_file(fx->path, "{\"a\":1}\n{\"a\":2}\n");
}

static void test_compact(void **state)
{
    fixture_t *fx = *state;
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    append(&j, "{\"type\":\"run\",\"id\":1,\"state\":\"running\"}");
    append(&j, "{\"type\":\"run\",\"id\":1,\"state\":\"success\"}");
    append(&j, "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":100}");
    append(&j, "{\"type\":\"run\",\"id\":2,\"state\":\"success\"}");
    append(&j, "{\"type\":\"schedule\",\"name\":\"hourly\",\"last_fire\":150}");
    append(&j, "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":200}");
    append(&j, "{\"type\":\"run\",\"id\":3,\"state\":\"running\"}");
    append(&j, "{\"type\":\"meta\",\"version\":1}");
    append(&j, "{\"type\":\"run\",\"id\":3,\"state\":\"failed\"}");
    append(&j, "{\"type\":\"meta\",\"version\":2}");
    assert_true(journal_compact(&j, 2, err, sizeof err));
    /* The journal is open on the new file: appends land after the kept records. */
    append(&j, "{\"type\":\"run\",\"id\":4,\"state\":\"running\"}");
    journal_close(&j);
    expect_file(fx->path, "{\"type\":\"run\",\"id\":2,\"state\":\"success\"}\n"
                          "{\"type\":\"schedule\",\"name\":\"hourly\",\"last_fire\":150}\n"
                          "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":200}\n"
                          "{\"type\":\"run\",\"id\":3,\"state\":\"running\"}\n"
                          "{\"type\":\"run\",\"id\":3,\"state\":\"failed\"}\n"
                          "{\"type\":\"meta\",\"version\":2}\n"
                          "{\"type\":\"run\",\"id\":4,\"state\":\"running\"}\n");

    assert_true(journal_open(&j, fx->state, err, sizeof err));
    assert_true(journal_compact(&j, 0, err, sizeof err));
    journal_close(&j);
    expect_file(fx->path, "{\"type\":\"schedule\",\"name\":\"hourly\",\"last_fire\":150}\n"
                          "{\"type\":\"schedule\",\"name\":\"nightly\",\"last_fire\":200}\n"
                          "{\"type\":\"meta\",\"version\":2}\n");

    /* A corrupt journal is not compacted (nor silently emptied). */
    const char *bad = "{\"a\":1}\nnope\n{\"a\":2}\n";
    write_file(fx->path, bad);
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    assert_false(journal_compact(&j, 5, err, sizeof err));
    assert_non_null(strstr(err, ":2: corrupt journal record"));
    journal_close(&j);
    expect_file(fx->path, bad);
}

static size_t count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Leaves exactly one descriptor free (the lowest), so the second of two open files at a
 * time fails with EMFILE; restores with on == false. */
static void limit_open_files(bool on)
{
    static struct rlimit saved;
    struct rlimit rl;
    if (on) {
        int lowest = dup(0);
        assert_true(lowest >= 0);
        close(lowest);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
        rl = saved;
        rl.rlim_cur = (rlim_t)lowest + 1;
    } else {
        rl = saved;
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* The journal's descriptor is the file at its path, not a replaced (unlinked) one. */
static void expect_fd_is_path(const journal_t *j)
{
    struct stat by_fd, by_path;
    assert_int_equal(fstat(j->fd, &by_fd), 0);
    assert_int_equal(stat(j->path, &by_path), 0);
    assert_true(by_fd.st_nlink > 0);
    assert_int_equal(by_fd.st_dev, by_path.st_dev);
    assert_int_equal(by_fd.st_ino, by_path.st_ino);
    assert_true(fcntl(j->fd, F_GETFL) & O_APPEND);
}

/* A compaction while serving that fails must leave the journal appending to the file at
 * its path: before the rename to the old file, after it to the new one. */
static void test_compact_failure_keeps_appending(void **state)
{
    fixture_t *fx = *state;
    journal_t j;
    char err[512];
    assert_true(journal_open(&j, fx->state, err, sizeof err));
    for (int id = 1; id <= 3; id++) {
        char rec[64];
        snprintf(rec, sizeof rec, "{\"type\":\"run\",\"id\":%d}", id);
        append(&j, rec);
    }
    const char *three = "{\"type\":\"run\",\"id\":1}\n{\"type\":\"run\",\"id\":2}\n"
                        "{\"type\":\"run\",\"id\":3}\n";
    expect_file(fx->path, three);

    /* Before the rename: the temporary file cannot be written (a full disk). */
    limit_file_size(10);
    bool ok = journal_compact(&j, 1, err, sizeof err);
    limit_file_size(0);
    assert_false(ok);
    assert_non_null(strstr(err, ".tmp."));
    assert_int_equal(count_temp_files(fx->state), 0);
    expect_fd_is_path(&j);
    append(&j, "{\"type\":\"run\",\"id\":4}");
    char want[512];
    snprintf(want, sizeof want, "%s{\"type\":\"run\",\"id\":4}\n", three);
    expect_file(fx->path, want);

    /* After the rename: the directory cannot be opened for its fsync (no descriptor left
     * while the new file's is held). The new file is the journal now, and appends go to it. */
    limit_open_files(true);
    ok = journal_compact(&j, 2, err, sizeof err);
    limit_open_files(false);
    assert_false(ok);
    assert_non_null(strstr(err, "cannot open directory"));
    assert_int_equal(count_temp_files(fx->state), 0);
    expect_fd_is_path(&j);
    append(&j, "{\"type\":\"run\",\"id\":5}");
    expect_file(fx->path, "{\"type\":\"run\",\"id\":3}\n{\"type\":\"run\",\"id\":4}\n"
                          "{\"type\":\"run\",\"id\":5}\n");

    /* And a compaction that succeeds hands over the new file the same way. */
    assert_true(journal_compact(&j, 1, err, sizeof err));
    expect_fd_is_path(&j);
    append(&j, "{\"type\":\"run\",\"id\":6}");
    journal_close(&j);
    expect_file(fx->path, "{\"type\":\"run\",\"id\":5}\n{\"type\":\"run\",\"id\":6}\n");
}

static void test_write_atomic(void **state)
{
    fixture_t *fx = *state;
    make_state_dir(fx);
    char path[200];
    snprintf(path, sizeof path, "%s/scheduler.json", fx->state);
    char err[512];
    const char *old_text = "{\"last_fire\":100}\n";
    assert_true(journal_write_atomic(path, old_text, strlen(old_text), err, sizeof err));
    expect_file(path, old_text);
    const char *new_text = "{\"last_fire\":200}\n";
    assert_true(journal_write_atomic(path, new_text, strlen(new_text), err, sizeof err));
    expect_file(path, new_text);
    assert_int_equal(count_temp_files(fx->state), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A write that fails midway (a full disk) leaves the old content and no temp file. */
    char big[4096];
    memset(big, 'x', sizeof big);
    limit_file_size(100);
    bool ok = journal_write_atomic(path, big, sizeof big, err, sizeof err);
    limit_file_size(0);
    assert_false(ok);
    assert_non_null(strstr(err, ".tmp."));
    expect_file(path, new_text);
    assert_int_equal(count_temp_files(fx->state), 0);

    /* Empty content is a valid state file. */
    assert_true(journal_write_atomic(path, "", 0, err, sizeof err));
    expect_file(path, "");

    char missing[220];
    snprintf(missing, sizeof missing, "%s/nodir/x.json", fx->state);
    assert_false(journal_write_atomic(missing, "x", 1, err, sizeof err));
    assert_non_null(strstr(err, "nodir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_line_skipped_and_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_last_line_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_repairs_unterminated_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle_line_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_write_is_cut_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_failure_keeps_appending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
