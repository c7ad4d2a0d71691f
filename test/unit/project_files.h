/* project_files.h — dbt projects on disk for the unit tests that read them: the fixture
 * test/unit/models/shop, and temporary projects written file by file. Include after
 * cmocka.h. */
#ifndef ELTD_TEST_PROJECT_FILES_H
#define ELTD_TEST_PROJECT_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The fixture's directory, from ELTD_SOURCE_DIR (ctest) or this file's place. */
static char fixture[1024];

static inline void find_fixture(void)
{
    const char *root = getenv("ELTD_SOURCE_DIR");
    if (root)
        snprintf(fixture, sizeof fixture, "%s/test/unit/models/shop", root);
    else
        snprintf(fixture, sizeof fixture, "%.*s/models/shop",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
}

/* The temporary project: new_tmp_project makes it, write_file fills it (parents made as
 * needed), rm_tmp_project removes it. */
static char tmpdir[256];

static inline void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    for (char *p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static inline void new_tmp_project(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eltd-test-project.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static inline void rm_tmp_project(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

#endif
