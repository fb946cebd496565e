/* The tuning file: the knobs a backend reads from EDGEATTN_* environment variables (tile sizes, paths,
 * thresholds), written by `edgebench --tune` on the board and read back at plan and create. A file is
 * keyed by the library version, the backend and the device; a file for another key is ignored (the
 * backend info says so), a malformed one is an error. An environment variable set by the user wins over
 * the file. Format (docs/TUNING.md):
 *
 *   edgeattn-tuning 1
 *   library 0.1.0
 *   backend cpu
 *   device AMD EPYC 7B13
 *   set EDGEATTN_CPU_TILES kb=256,rb=128
 *
 * Lines starting with '#' and blank lines are skipped. Only create and plan read it (never a hot call).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ea_core.h"

#define TUNE_MAX_BYTES 65536
#define TUNE_LINE 512

/* Knobs a file may set, by backend (the prefix after EDGEATTN_). */
static const char *const knobs[] = {
    "EDGEATTN_CPU_TILES",   "EDGEATTN_CPU_INLINE",     "EDGEATTN_CPU_SPIN_US",
    "EDGEATTN_OPENCL_TILES", "EDGEATTN_OPENCL_PATH",   "EDGEATTN_OPENCL_OPTIONS",
    "EDGEATTN_CUDA_SPLITS",  "EDGEATTN_CUDA_DECODE",
};

const char *ea_tuning_path(const edgeattn_config *cfg)
{
    if (cfg->tuning_file && cfg->tuning_file[0])
        return cfg->tuning_file;
    const char *e = getenv("EDGEATTN_TUNING_FILE");
    return e && *e ? e : NULL;
}

/* Walks the file: calls line_fn for each directive line (keyword, rest). Returns OK or the first error,
 * with msg naming the file and the line. */
typedef edgeattn_status (*line_fn)(void *arg, const char *key, const char *rest, int line, char *msg,
                                   const char *path);

static edgeattn_status walk(const char *path, line_fn fn, void *arg, char *msg)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s: cannot be read", path);
    char line[TUNE_LINE + 2];
    int n = 0;
    long bytes = 0;
    edgeattn_status st = EDGEATTN_OK;
    bool header = false;
    while (st == EDGEATTN_OK && fgets(line, sizeof line, f)) {
        n++;
        const size_t len = strlen(line);
        bytes += (long)len;
        if (bytes > TUNE_MAX_BYTES) {
            st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s: longer than %d bytes", path, TUNE_MAX_BYTES);
            break;
        }
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: longer than %d characters", path,
                         n, TUNE_LINE);
            break;
        }
        char *p = line, *end = line + len;
        while (end > p && isspace((unsigned char)end[-1]))
            *--end = '\0';
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        for (char *c = p; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t') {
                st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: a control character", path, n);
                break;
            }
        if (st != EDGEATTN_OK)
            break;
        char *key = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        if (!header) {
            if (strcmp(key, "edgeattn-tuning") != 0) {
                st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                             "tuning file %.160s line %d: expected the header 'edgeattn-tuning 1'", path, n);
                break;
            }
            if (strcmp(p, "1") != 0) {
                st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                             "tuning file %.160s: format version '%.16s', this library reads version 1", path, p);
                break;
            }
            header = true;
            continue;
        }
        st = fn(arg, key, p, n, msg, path);
    }
    if (st == EDGEATTN_OK && ferror(f))
        st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s: read error", path);
    if (st == EDGEATTN_OK && !header)
        st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s: empty (no 'edgeattn-tuning 1' header)", path);
    fclose(f);
    return st;
}

typedef struct scan {
    char library[64], backend[32], device[160];
    bool has_library, has_backend, has_device;
    const char *want; /* knob looked up, or NULL */
    char *value;
    size_t value_len;
    bool found;
} scan;

static edgeattn_status on_line(void *arg, const char *key, const char *rest, int n, char *msg, const char *path)
{
    scan *s = arg;
    struct {
        const char *name;
        char *dst;
        size_t len;
        bool *seen;
    } fields[] = {{"library", s->library, sizeof s->library, &s->has_library},
                  {"backend", s->backend, sizeof s->backend, &s->has_backend},
                  {"device", s->device, sizeof s->device, &s->has_device}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(key, fields[i].name)) {
            if (*fields[i].seen)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: a second '%s' line", path, n,
                               key);
            if (!*rest || strlen(rest) >= fields[i].len)
                return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: '%s' needs a value (< %zu "
                               "characters)", path, n, key, fields[i].len);
            snprintf(fields[i].dst, fields[i].len, "%s", rest);
            *fields[i].seen = true;
            return EDGEATTN_OK;
        }
    if (!strcmp(key, "driver"))
        return EDGEATTN_OK; /* informational: the device line is the key */
    if (strcmp(key, "set") != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: unknown directive '%.32s'", path, n, key);
    if (!s->has_library || !s->has_backend || !s->has_device)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG,
                       "tuning file %.160s line %d: 'set' before the library, backend and device lines", path, n);
    char name[64];
    size_t i = 0;
    while (rest[i] && !isspace((unsigned char)rest[i]) && i < sizeof name - 1) {
        name[i] = rest[i];
        i++;
    }
    name[i] = '\0';
    const char *val = rest + i;
    while (isspace((unsigned char)*val))
        val++;
    bool known = false;
    for (size_t k = 0; k < sizeof knobs / sizeof knobs[0]; k++)
        known = known || !strcmp(name, knobs[k]);
    if (!known)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: '%.64s' is not a knob a file may set",
                       path, n, name);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "EDGEATTN_%s_", s->backend);
    for (char *c = prefix; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    if (strncmp(name, prefix, strlen(prefix)) != 0)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: %.64s is not a knob of backend %.32s",
                       path, n, name, s->backend);
    if (!*val)
        return ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s line %d: %.64s needs a value", path, n, name);
    if (s->want && !strcmp(name, s->want)) {
        snprintf(s->value, s->value_len, "%s", val);
        s->found = true;
    }
    return EDGEATTN_OK;
}

edgeattn_status ea_tuning_validate(const edgeattn_config *cfg, char *msg)
{
    const char *path = ea_tuning_path(cfg);
    if (!path)
        return EDGEATTN_OK;
    scan s;
    memset(&s, 0, sizeof s);
    edgeattn_status st = walk(path, on_line, &s, msg);
    if (st == EDGEATTN_OK && (!s.has_library || !s.has_backend || !s.has_device))
        st = ea_fail(msg, EDGEATTN_ERR_INVALID_ARG, "tuning file %.160s: the library, backend and device lines are "
                     "required", path);
    return st;
}

/* Does the file's key match (library, backend, device)? *why says what differs. */
static bool key_matches(const scan *s, const char *backend, const char *device, const char **why)
{
    if (strcmp(s->library, edgeattn_version()) != 0) {
        *why = "ignored: library";
        return false;
    }
    if (strcmp(s->backend, backend) != 0) {
        *why = "ignored: backend";
        return false;
    }
    if (strcmp(s->device, device) != 0) {
        *why = "ignored: device";
        return false;
    }
    *why = "applied";
    return true;
}

const char *ea_knob(const edgeattn_config *cfg, const char *backend, const char *device, const char *name, char *buf,
                    size_t len)
{
    const char *env = getenv(name);
    if (env && *env)
        return env;
    const char *path = cfg ? ea_tuning_path(cfg) : NULL;
    if (!path)
        return NULL;
    scan s;
    memset(&s, 0, sizeof s);
    s.want = name;
    s.value = buf;
    s.value_len = len;
    const char *why;
    if (walk(path, on_line, &s, NULL) != EDGEATTN_OK || !key_matches(&s, backend, device, &why) || !s.found)
        return NULL;
    return buf;
}

void ea_tuning_note(const edgeattn_config *cfg, const char *backend, const char *device, char *note, size_t len)
{
    const char *path = ea_tuning_path(cfg);
    if (!path) {
        snprintf(note, len, "none");
        return;
    }
    scan s;
    memset(&s, 0, sizeof s);
    const char *why = "ignored: unreadable";
    if (walk(path, on_line, &s, NULL) == EDGEATTN_OK)
        (void)key_matches(&s, backend, device, &why);
    snprintf(note, len, "%s", why);
}
