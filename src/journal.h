/* journal.h — the run-history journal: an append-only file of JSON lines in the state
 * directory, so /api/runs and the scheduler's last fire survive a restart; and the atomic
 * replace used for small state files. */
#ifndef ELTD_JOURNAL_H
#define ELTD_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JOURNAL_MUST_CHECK __attribute__((warn_unused_result))

/* The journal's file name inside the state directory. */
#define JOURNAL_FILE_NAME "runs.jsonl"

typedef struct {
    int fd;     /* the journal open for append, or -1 when closed */
    char *dir;  /* the state directory, as given to journal_open */
    char *path; /* dir + "/" JOURNAL_FILE_NAME */
} journal_t;

/* Called once per record, in file order. The record is borrowed: json_incref it to keep
 * it. Return false (with a reason in err) to stop the replay, which then fails with
 * "FILE:LINE: <reason>". */
typedef bool (*journal_replay_cb)(json_t *record, size_t line, void *ud, char *err, size_t errlen);

/* Creates the state directory (and its parents, mode 0700) if missing, then opens or
 * creates the journal (mode 0600, O_APPEND|O_CLOEXEC). A last line without its newline
 * (a write cut short by a crash) is cut off with a log_warn, so the next append starts on
 * a line of its own. Call journal_replay first to read the history. */
bool journal_open(journal_t *j, const char *state_dir, char *err, size_t errlen) JOURNAL_MUST_CHECK;

/* Closes the file and frees the paths; safe on a journal that failed to open. */
void journal_close(journal_t *j);

/* Appends one JSON object as one compact line with a single write(), then fdatasync()s.
 * This blocks the loop for the sync (typically a millisecond or so); it is acceptable
 * because records are few — one per run state change — and losing a run's final state in
 * a crash would be worse. A short write (disk full) is cut back off so the file stays
 * whole. */
bool journal_append(journal_t *j, const json_t *record, char *err,
                    size_t errlen) JOURNAL_MUST_CHECK;

/* Reads STATE_DIR/runs.jsonl in order, calling cb with each record (objects only; duplicate
 * keys are refused). A missing directory or file is an empty history. A torn or corrupt
 * LAST line is skipped with a log_warn naming file and line, and truncated away so
 * appending resumes on a clean file. A corrupt line followed by more data fails with
 * "FILE:LINE: corrupt journal record: <reason>": eltd refuses to start rather than
 * silently lose history. On failure cb may already have seen the earlier records. */
bool journal_replay(const char *state_dir, journal_replay_cb cb, void *ud, char *err,
                    size_t errlen) JOURNAL_MUST_CHECK;

/* Replaces the journal's content with the objects of the JSON array `records`, atomically
 * (journal_write_atomic), and appends to the new file from then on: the descriptor it was
 * written with is kept, so no reopen can fail after the rename. On a failure before the
 * rename the journal is untouched and stays open as it was; on one after it (the sync of
 * the directory) appends already go to the new file. Either way the journal stays usable. */
bool journal_rewrite(journal_t *j, const json_t *records, char *err,
                     size_t errlen) JOURNAL_MUST_CHECK;

/* Rewrites the journal keeping the records of the keep_runs runs with the highest ids.
 * The convention it relies on: a record {"type":"run","id":<integer>,...} belongs to run
 * id, and all records of a kept run are kept; any other record is state for which only the
 * newest record with the same "type" and "name" (either may be absent) matters. Order is
 * preserved. */
bool journal_compact(journal_t *j, size_t keep_runs, char *err, size_t errlen) JOURNAL_MUST_CHECK;

/* Replaces the file at path with data: writes a temporary file (mode 0600) in the same
 * directory, fsyncs it, renames it over path and fsyncs the directory. A reader (or a
 * restart after a crash) sees either the old content or the new, never a mix; on failure
 * the temporary file is removed. */
bool journal_write_atomic(const char *path, const char *data, size_t len, char *err,
                          size_t errlen) JOURNAL_MUST_CHECK;

#endif
