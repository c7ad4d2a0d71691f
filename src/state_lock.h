/* state_lock.h — one eltd at a time per state directory. A run drops the `__eltd_*`
 * temporaries it finds in the warehouse (leftovers of a killed process), so a second eltd
 * writing the same warehouse would drop the first one's tables in flight, and two daemons
 * would interleave one journal. `eltd serve` and `eltd run` hold an exclusive flock(2) on
 * `<state_dir>/eltd.lock` while they live; the kernel releases it when the process ends,
 * however it ends, so no stale lock survives a crash. */
#ifndef ELTD_STATE_LOCK_H
#define ELTD_STATE_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#define STATE_LOCK_FILE_NAME "eltd.lock"

typedef struct state_lock {
    int fd; /* the lock file, or -1 when not held */
} state_lock_t;

typedef enum {
    STATE_LOCK_HELD,   /* the lock is ours until state_lock_release */
    STATE_LOCK_BUSY,   /* another process holds it: err names it (pid, command, since) */
    STATE_LOCK_NO_DIR, /* the directory cannot be created or the file opened: err says why */
} state_lock_result_t;

/* Creates dir (mode 0700) when create_dir, then takes the lock without waiting and writes
 * "pid=N command=WHAT since=ISO-8601" into the file for whoever finds it busy. A file that
 * exists but is not writable is still locked (read-only): the lock is on the open file, not
 * on its contents. */
state_lock_result_t state_lock_take(state_lock_t *l, const char *dir, bool create_dir,
                                    const char *what, char *err, size_t errlen);
void state_lock_release(state_lock_t *l);

#endif
