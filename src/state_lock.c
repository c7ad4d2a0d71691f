/* state_lock.c — the exclusive flock on <state_dir>/eltd.lock (see state_lock.h). */
#include "state_lock.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* Whoever holds it, from what it wrote: "pid=N command=WHAT since=T", or a placeholder. */
static void read_holder(int fd, char *out, size_t cap)
{
    ssize_t n = pread(fd, out, cap - 1, 0);
    if (n <= 0) {
        snprintf(out, cap, "pid unknown");
        return;
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

state_lock_result_t state_lock_take(state_lock_t *l, const char *dir, bool create_dir,
                                    const char *what, char *err, size_t errlen)
{
    l->fd = -1;
    if (create_dir && !util_make_dirs(dir, err, errlen))
        return STATE_LOCK_NO_DIR;
    char *path = util_asprintf("%s/%s", dir, STATE_LOCK_FILE_NAME);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return STATE_LOCK_NO_DIR;
    }
    bool writable = true;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        writable = false;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(path);
        return STATE_LOCK_NO_DIR;
    }
    int rc;
    while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int e = errno;
        char holder[256];
        read_holder(fd, holder, sizeof holder);
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "state directory %s is in use by another eltd (%s)", dir, holder);
        else
            snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(e));
        close(fd);
        free(path);
        return e == EWOULDBLOCK ? STATE_LOCK_BUSY : STATE_LOCK_NO_DIR;
    }
    if (writable) {
        char since[32] = "?";
        time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm))
            strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char line[160];
        int n = snprintf(line, sizeof line, "pid=%ld command=%s since=%s\n", (long)getpid(), what,
                         since);
        /* The holder's description is a courtesy; the lock is what counts. */
        bool described = ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n;
        (void)described;
    }
    free(path);
    l->fd = fd;
    return STATE_LOCK_HELD;
}

void state_lock_release(state_lock_t *l)
{
    if (l->fd >= 0) {
        /* Emptied first, so that a reader never names a process that has gone. */
        int emptied = ftruncate(l->fd, 0);
        (void)emptied;
        close(l->fd);
        l->fd = -1;
    }
}
