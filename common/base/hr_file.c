#include "hr_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

char *hr_file_read(
    const char *path, size_t max, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int err;

    if (!f) {
        snprintf(errstr, errstr_size, "cannot open '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    buf = malloc(max + 2);
    HR_ASSERT(buf);
    n = fread(buf, 1, max + 1, f);
    err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (err || n > max) {
        if (err)
            snprintf(errstr, errstr_size, "cannot read '%s': %s", path,
                     strerror(err));
        else
            snprintf(errstr, errstr_size, "'%s' is larger than %zu bytes", path,
                     max);
        memset(buf, 0, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}
