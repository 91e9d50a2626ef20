/*
 * Small files read whole: keys, certificates, credentials named in the
 * configuration.
 */
#ifndef HR_FILE_H
#define HR_FILE_H

#include <stddef.h>

#include "hr_compat.h"

/**
 * The whole file @path, at most @max bytes, NUL-terminated and malloc'd
 * (the caller frees it, wiping it first when it holds a secret), its
 * length in *@len when @len is not NULL. NULL with @errstr ("cannot open
 * '<path>': <reason>", "cannot read '<path>': <reason>", "'<path>' is
 * larger than <max> bytes"); what was read is wiped before it is freed.
 */
HR_MUST_CHECK char *hr_file_read(const char *path,
                                 size_t max,
                                 size_t *len,
                                 char *errstr,
                                 size_t errstr_size);

#endif
