/* Temporary directories, fixture and binary paths, whole-file reads. */
#define _XOPEN_SOURCE 700 /* nftw() */

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_PATH_BUFS 16
#define HX_PATH_MAX  4096

char *hx_tmpdir_new(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *dir;
    size_t len;

    if (!base || !*base)
        base = "/tmp";
    len = strlen(base) + strlen(tag) + sizeof("/herald--XXXXXX");
    dir = malloc(len);
    if (!dir)
        return NULL;
    snprintf(dir, len, "%s/herald-%s-XXXXXX", base, tag);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "hx: cannot create temporary directory '%s': %s\n", dir,
                strerror(errno));
        free(dir);
        return NULL;
    }
    return dir;
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) && errno != ENOENT)
        fprintf(stderr, "hx: cannot remove '%s': %s\n", path, strerror(errno));
    return 0; /* keep going */
}

void hx_tmpdir_done(char *dir)
{
    if (!dir)
        return;
    if (getenv("HERALD_TEST_KEEP"))
        fprintf(stderr, "keeping %s\n", dir);
    else
        hx_tmpdir_remove(dir);
    free(dir);
}

void hx_tmpdir_remove(const char *dir)
{
    if (!dir)
        return;
    /* Depth first, so directories are empty when their turn comes. */
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
        fprintf(stderr, "hx: cannot walk '%s': %s\n", dir, strerror(errno));
}

/* Rotating static buffers: long enough for an argv built in one
 * expression, no free() in every test. */
static char *path_buf(void)
{
    static char bufs[HX_PATH_BUFS][HX_PATH_MAX];
    static unsigned next;

    return bufs[next++ % HX_PATH_BUFS];
}

const char *hx_bin(const char *name)
{
    char *buf = path_buf();

    snprintf(buf, HX_PATH_MAX, "%s/%s", HX_BIN_DIR, name);
    return buf;
}

const char *hx_fixture_path(const char *rel)
{
    const char *dir = getenv("HERALD_TEST_FIXTURES");
    char *buf = path_buf();

    if (dir && *dir)
        snprintf(buf, HX_PATH_MAX, "%s/%s", dir, rel);
    else
        snprintf(buf, HX_PATH_MAX, "%s/tests/fixtures/%s", HX_SOURCE_DIR, rel);
    return buf;
}

char *hx_file_read(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    size_t size = 0, cap = 0;

    if (!fp)
        return NULL;
    for (;;) {
        size_t n;

        if (cap - size < 4096) {
            char *grown;

            cap = cap ? cap * 2 : 8192;
            grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(fp);
                errno = ENOMEM;
                return NULL;
            }
            data = grown;
        }
        n = fread(data + size, 1, cap - size - 1, fp);
        size += n;
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        int saved = errno;

        free(data);
        fclose(fp);
        errno = saved;
        return NULL;
    }
    fclose(fp);
    data[size] = '\0';
    if (len)
        *len = size;
    return data;
}
