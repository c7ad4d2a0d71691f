/* journal.c — the run-history journal (JSON lines, appended with one write and a sync,
 * replayed with torn-tail repair), its compaction, and atomic replacement of small state
 * files (temp file, fsync, rename, fsync of the directory). */
#include "journal.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
    bool ok = fsync(fd) == 0 || fail(err, errlen, "%s: fsync: %s", dir, strerror(errno));
    close(fd);
    return ok;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Cuts the file back to `keep` bytes and syncs, so a torn tail is gone for good before
 * anything is appended after it. */
static bool cut_tail(int fd, const char *path, off_t keep, size_t line, const char *why, char *err,
                     size_t errlen)
{
    log_warn("msg=\"skipping torn last journal record\" file=%s line=%zu reason=%s",
             log_quote(path), line, log_quote(why));
    if (ftruncate(fd, keep) != 0 || fsync(fd) != 0)
        return fail(err, errlen, "%s: cannot truncate torn record at line %zu: %s", path, line,
                    strerror(errno));
    return true;
}

/* If the last byte is not a newline the final write was cut short: find where the last
 * whole line ends (counting lines for the log) and cut the rest. */
static bool repair_unterminated_tail(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail(err, errlen, "%s: fstat: %s", path, strerror(errno));
    if (st.st_size == 0)
        return true;
    char last;
    if (pread(fd, &last, 1, st.st_size - 1) != 1)
        return fail(err, errlen, "%s: read: %s", path, strerror(errno));
    if (last == '\n')
        return true;
    char buf[65536];
    off_t off = 0, keep = 0;
    size_t lines = 0;
    while (off < st.st_size) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(err, errlen, "%s: read: %s", path, n < 0 ? strerror(errno) : "short");
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                lines++;
                keep = off + i + 1;
            }
        }
        off += n;
    }
    return cut_tail(fd, path, keep, lines + 1, "no trailing newline", err, errlen);
}

static int open_journal_file(const char *path)
{
    return open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

bool journal_open(journal_t *j, const char *state_dir, char *err, size_t errlen)
{
    j->fd = -1;
    j->dir = strdup(state_dir);
    j->path = join_path(state_dir, JOURNAL_FILE_NAME);
    if (!j->dir || !j->path) {
        journal_close(j);
        return fail(err, errlen, "%s: out of memory", state_dir);
    }
    if (!util_make_dirs(state_dir, err, errlen)) {
        journal_close(j);
        return false;
    }
    j->fd = open_journal_file(j->path);
    if (j->fd < 0) {
        fail(err, errlen, "%s: cannot open journal: %s", j->path, strerror(errno));
        journal_close(j);
        return false;
    }
    /* The directory entry of a journal created just now must survive a crash too. */
    if (!repair_unterminated_tail(j->fd, j->path, err, errlen) ||
        !fsync_dir(state_dir, err, errlen)) {
        journal_close(j);
        return false;
    }
    return true;
}

void journal_close(journal_t *j)
{
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->dir);
    free(j->path);
    j->dir = NULL;
    j->path = NULL;
}

/* One record as one line: JSON_COMPACT never emits a raw newline (strings escape it). */
static char *record_line(const json_t *record, size_t *len)
{
    char *text = json_dumps(record, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    *len = n + 1;
    return line;
}

bool journal_append(journal_t *j, const json_t *record, char *err, size_t errlen)
{
    if (j->fd < 0)
        return fail(err, errlen, "journal is not open");
    if (!json_is_object(record))
        return fail(err, errlen, "%s: a journal record must be a JSON object", j->path);
    size_t len;
    char *line = record_line(record, &len);
    if (!line)
        return fail(err, errlen, "%s: cannot encode journal record", j->path);
    /* Where the line starts, so a short write can be cut back off. */
    off_t start = lseek(j->fd, 0, SEEK_END);
    ssize_t n;
    do
        n = write(j->fd, line, len);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    free(line);
    if (n != (ssize_t)len) {
        if (n > 0 && start >= 0 && ftruncate(j->fd, start) != 0)
            log_warn("msg=\"cannot cut a partial journal record\" file=%s error=%s",
                     log_quote(j->path), log_quote(strerror(errno)));
        return fail(err, errlen, "%s: write: %s", j->path,
                    n < 0 ? strerror(saved) : "short write (disk full?)");
    }
    if (fdatasync(j->fd) != 0)
        return fail(err, errlen, "%s: fdatasync: %s", j->path, strerror(errno));
    return true;
}

bool journal_replay(const char *state_dir, journal_replay_cb cb, void *ud, char *err, size_t errlen)
{
    char *path = join_path(state_dir, JOURNAL_FILE_NAME);
    if (!path)
        return fail(err, errlen, "%s: out of memory", state_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        bool none = errno == ENOENT;
        bool ok = none || fail(err, errlen, "%s: cannot open journal: %s", path, strerror(errno));
        free(path);
        return ok;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        fail(err, errlen, "%s: fdopen: %s", path, strerror(errno));
        close(fd);
        free(path);
        return false;
    }

    bool ok = true;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    off_t off = 0; /* where the current line starts */
    ssize_t n;
    while (ok && (n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            /* Only the last line can lack its newline: getline stopped at end of file. */
            ok = cut_tail(fd, path, off, lineno, "no trailing newline", err, errlen);
            break;
        }
        json_error_t jerr;
        json_t *rec = json_loadb(line, (size_t)n - 1, JSON_REJECT_DUPLICATES, &jerr);
        if (!rec || !json_is_object(rec)) {
            const char *why = rec ? "not a JSON object" : jerr.text;
            int next = fgetc(f);
            if (next == EOF && !ferror(f))
                ok = cut_tail(fd, path, off, lineno, why, err, errlen);
            else
                ok = fail(err, errlen, "%s:%zu: corrupt journal record: %s", path, lineno, why);
            json_decref(rec);
            break;
        }
        char reason[256] = "";
        if (cb && !cb(rec, lineno, ud, reason, sizeof reason))
            ok = fail(err, errlen, "%s:%zu: %s", path, lineno,
                      reason[0] ? reason : "record refused");
        json_decref(rec);
        off += n;
    }
    if (ok && ferror(f))
        ok = fail(err, errlen, "%s: read: %s", path, strerror(errno));
    free(line);
    fclose(f);
    free(path);
    return ok;
}

/* journal_write_atomic's work. With keep_fd NULL the temporary file is closed; otherwise it
 * is switched to O_APPEND and, once renamed over path, handed to the caller in *keep_fd
 * (even when the directory sync after the rename fails: the file at path is then this
 * one); *keep_fd stays -1 if the rename did not happen. */
static bool write_atomic(const char *path, const char *data, size_t len, int *keep_fd, char *err,
                         size_t errlen)
{
    if (keep_fd)
        *keep_fd = -1;
    char *dir = dir_of(path);
    size_t tmplen = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(tmplen);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return fail(err, errlen, "%s: out of memory", path);
    }
    snprintf(tmp, tmplen, "%s.tmp.XXXXXX", path);
    bool ok = true;
    /* mkostemp is a GNU extension; with one thread nothing can exec between the two calls. */
    int fd = mkstemp(tmp);
    if (fd >= 0)
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fd < 0) {
        ok = fail(err, errlen, "%s: cannot create temporary file: %s", tmp, strerror(errno));
        goto out;
    }
    int flags = keep_fd ? fcntl(fd, F_GETFL) : 0;
    if (keep_fd && (flags < 0 || fcntl(fd, F_SETFL, flags | O_APPEND) != 0))
        ok = fail(err, errlen, "%s: cannot set O_APPEND: %s", tmp, strerror(errno));
    size_t done = 0;
    while (ok && done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ok = fail(err, errlen, "%s: write: %s", tmp, n < 0 ? strerror(errno) : "no progress");
        else
            done += (size_t)n;
    }
    if (ok && fsync(fd) != 0)
        ok = fail(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
    if (!ok || !keep_fd) {
        if (close(fd) != 0 && ok)
            ok = fail(err, errlen, "%s: close: %s", tmp, strerror(errno));
        fd = -1;
    }
    if (ok && rename(tmp, path) != 0)
        ok = fail(err, errlen, "%s: rename: %s", path, strerror(errno));
    if (!ok) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        goto out;
    }
    if (keep_fd)
        *keep_fd = fd;
    /* Without this the rename itself may not survive a crash. */
    ok = fsync_dir(dir, err, errlen);
out:
    free(dir);
    free(tmp);
    return ok;
}

bool journal_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    return write_atomic(path, data, len, NULL, err, errlen);
}

bool journal_rewrite(journal_t *j, const json_t *records, char *err, size_t errlen)
{
    if (!j->path)
        return fail(err, errlen, "journal is not open");
    if (!json_is_array(records))
        return fail(err, errlen, "%s: records to rewrite must be a JSON array", j->path);
    char *data = NULL;
    size_t len = 0, cap = 0;
    size_t i;
    json_t *rec;
    bool ok = true;
    json_array_foreach(records, i, rec)
    {
        size_t n;
        char *line = json_is_object(rec) ? record_line(rec, &n) : NULL;
        if (!line) {
            ok = fail(err, errlen, "%s: record %zu is not an encodable JSON object", j->path, i);
            break;
        }
        if (len + n + 1 > cap) {
            size_t ncap = cap ? cap : 4096;
            while (len + n + 1 > ncap)
                ncap *= 2;
            char *grown = realloc(data, ncap);
            if (!grown) {
                free(line);
                ok = fail(err, errlen, "%s: out of memory", j->path);
                break;
            }
            data = grown;
            cap = ncap;
        }
        memcpy(data + len, line, n);
        len += n;
        free(line);
    }
    /* Appends continue on the descriptor the new content was written with, not on one
     * opened by name afterwards: an open that failed after the rename would leave the
     * journal appending to the replaced file, unlinked, where every record is lost. */
    int fd = -1;
    if (ok)
        ok = write_atomic(j->path, data ? data : "", len, &fd, err, errlen);
    free(data);
    if (fd >= 0) {
        if (j->fd >= 0)
            close(j->fd);
        j->fd = fd;
    }
    return ok;
}

static bool collect_record(json_t *record, size_t line, void *ud, char *err, size_t errlen)
{
    (void)line;
    (void)err;
    (void)errlen;
    return json_array_append(ud, record) == 0;
}

static bool is_run_record(const json_t *rec, json_int_t *id)
{
    const char *type = json_string_value(json_object_get(rec, "type"));
    const json_t *jid = json_object_get(rec, "id");
    if (!type || strcmp(type, "run") != 0 || !json_is_integer(jid))
        return false;
    *id = json_integer_value(jid);
    return true;
}

static int cmp_id_desc(const void *a, const void *b)
{
    json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;
    return (x < y) - (x > y);
}

static bool same_state_key(const json_t *a, const json_t *b)
{
    static const char *const keys[] = {"type", "name"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *x = json_object_get(a, keys[k]), *y = json_object_get(b, keys[k]);
        if (!(x == NULL && y == NULL) && !(x && y && json_equal((json_t *)x, (json_t *)y)))
            return false;
    }
    return true;
}

bool journal_compact(journal_t *j, size_t keep_runs, char *err, size_t errlen)
{
    if (!j->dir)
        return fail(err, errlen, "journal is not open");
    json_t *all = json_array();
    json_t *kept = json_array();
    json_int_t *ids = NULL;
    bool ok = all && kept;
    if (!ok)
        fail(err, errlen, "out of memory");
    ok = ok && journal_replay(j->dir, collect_record, all, err, errlen);

    size_t n = ok ? json_array_size(all) : 0, nids = 0;
    if (ok && n) {
        ids = malloc(n * sizeof *ids);
        ok = ids || fail(err, errlen, "out of memory");
    }
    /* The id of the oldest run kept: the keep_runs-th highest distinct id. */
    bool keep_any_run = false;
    json_int_t threshold = 0;
    for (size_t i = 0; ok && i < n; i++) {
        json_int_t id;
        if (is_run_record(json_array_get(all, i), &id))
            ids[nids++] = id;
    }
    if (ok && nids && keep_runs) {
        qsort(ids, nids, sizeof *ids, cmp_id_desc);
        size_t distinct = 0;
        for (size_t i = 0; i < nids && distinct < keep_runs; i++) {
            if (i == 0 || ids[i] != ids[i - 1]) {
                distinct++;
                threshold = ids[i];
            }
        }
        keep_any_run = true;
    }
    /* Walk from the newest record back, so the first state record met for a key is the
     * one to keep; `seen` holds those (a handful of keys). */
    json_t *seen = json_array();
    bool *keep = n ? calloc(n, sizeof *keep) : NULL;
    ok = ok && ((seen && (keep || !n)) || fail(err, errlen, "out of memory"));
    for (size_t i = n; ok && i-- > 0;) {
        json_t *rec = json_array_get(all, i);
        json_int_t id;
        if (is_run_record(rec, &id)) {
            keep[i] = keep_any_run && id >= threshold;
            continue;
        }
        keep[i] = true;
        for (size_t k = 0; keep[i] && k < json_array_size(seen); k++)
            keep[i] = !same_state_key(rec, json_array_get(seen, k));
        if (keep[i] && json_array_append(seen, rec) != 0)
            ok = fail(err, errlen, "out of memory");
    }
    for (size_t i = 0; ok && i < n; i++)
        if (keep[i] && json_array_append(kept, json_array_get(all, i)) != 0)
            ok = fail(err, errlen, "out of memory");
    free(keep);
    json_decref(seen);
    if (ok) {
        ok = journal_rewrite(j, kept, err, errlen);
        if (ok)
            log_info("msg=\"journal compacted\" file=%s records_before=%zu records_after=%zu",
                     log_quote(j->path), n, json_array_size(kept));
    }
    free(ids);
    json_decref(all);
    json_decref(kept);
    return ok;
}
