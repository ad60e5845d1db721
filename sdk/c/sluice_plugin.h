/*
 * sluice_plugin.h: the C helper for Sluice plugins, one header.
 *
 * A Sluice plugin in C is a wasm32-wasip1 reactor built with clang and wasi-libc, on
 * bindings that `sluice plugin bindgen --lang c` writes (step.h, step.c,
 * step_component_type.o), made a component by `sluice plugin componentize`. This
 * header sits on top of those bindings and gives:
 *
 *   - builders with defaults for the report, a finding and its location, the
 *     descriptor, and the run error (`sluice_report_*`, `sluice_finding_*`,
 *     `sluice_fail_*`);
 *   - the contract's finding fingerprint (wit/plugin.wit, `finding.fingerprint`;
 *     `sluice_fingerprint_*`), the same algorithm the host and every SDK use;
 *   - paths: resolution against the step's workdir (`sluice_path_resolve`), the path
 *     a finding shows (`sluice_path_shown`), and the `grants` import turned into
 *     `run-error::denied` naming the grant to add (`sluice_require_read`) before
 *     wasi-libc's ENOTCAPABLE can hide the cause;
 *   - a small JSON reader for the step's `with` table (`sluice_json_*`): the host has
 *     validated it against the plugin's schema already;
 *   - UTF-8: invalid sequences replaced by U+FFFD (`sluice_utf8_lossy`), code points
 *     counted (`sluice_utf8_count`).
 *
 * Everything is `static` (one translation unit includes it: the plugin's). Define
 * SLUICE_PLUGIN_NO_BINDINGS before including it to get only the parts that need no
 * bindings (fingerprint, UTF-8, JSON, paths): that is how ./test.sh unit-tests them
 * natively with gcc.
 *
 * Memory: every string and list in a report or descriptor you return is freed by
 * the bindings after the host has read it, so everything the builders store is
 * malloc'ed (they copy what you give them). Allocation failure is a panic
 * (sluice_panic): a plugin has nothing better to do, and the host turns the trap into
 * a failed step whose summary says so.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#if defined(__GNUC__) || defined(__clang__)
#define SLUICE_UNUSED __attribute__((unused))
#define SLUICE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SLUICE_UNUSED
#define SLUICE_PRINTF(f, a)
#endif
#define SLUICE_API static SLUICE_UNUSED

/* ------------------------------------------------------------------------------ */
/* Memory and text                                                                  */
/* ------------------------------------------------------------------------------ */

/*
 * End the plugin with an error that cannot be handled: writes `panic: MESSAGE` to
 * stderr, then aborts. The host turns the trap into a failed step whose summary is
 * that line (it recognizes `panic: ` lines, as Go writes them, and wasi-libc's
 * `Assertion failed:`), with the wasm frames in the step log. For errors the step's
 * author can act on, return a run-error instead (sluice_fail_*).
 */
SLUICE_PRINTF(1, 2) SLUICE_API _Noreturn void sluice_panic(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("panic: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    fflush(stderr);
    abort();
}

SLUICE_API void *sluice_xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) sluice_panic("out of memory (%zu bytes)", size);
    return p;
}

SLUICE_API void *sluice_xrealloc(void *old, size_t size) {
    void *p = realloc(old, size ? size : 1);
    if (!p) sluice_panic("out of memory (%zu bytes)", size);
    return p;
}

/* A copy of `len` bytes of `s`, NUL-terminated. */
SLUICE_API char *sluice_strndup(const char *s, size_t len) {
    char *copy = (char *)sluice_xmalloc(len + 1);
    if (len) memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

SLUICE_API char *sluice_strdup(const char *s) { return sluice_strndup(s, strlen(s)); }

/* printf into a new string. */
SLUICE_API char *sluice_vformat(const char *fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return sluice_strdup(fmt);
    char *out = (char *)sluice_xmalloc((size_t)n + 1);
    vsnprintf(out, (size_t)n + 1, fmt, args);
    return out;
}

SLUICE_PRINTF(1, 2) SLUICE_API char *sluice_format(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *out = sluice_vformat(fmt, args);
    va_end(args);
    return out;
}

/* A growable byte buffer, always NUL-terminated. */
typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
} sluice_buf_t;

SLUICE_API void sluice_buf_push(sluice_buf_t *b, const void *bytes, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + len + 1) cap *= 2;
        b->ptr = (char *)sluice_xrealloc(b->ptr, cap);
        b->cap = cap;
    }
    if (len) memcpy(b->ptr + b->len, bytes, len);
    b->len += len;
    b->ptr[b->len] = '\0';
}

SLUICE_API void sluice_buf_byte(sluice_buf_t *b, char c) { sluice_buf_push(b, &c, 1); }

/* The buffer's string (the caller owns it); the buffer is left empty. */
SLUICE_API char *sluice_buf_take(sluice_buf_t *b) {
    char *out = b->ptr ? b->ptr : sluice_strdup("");
    b->ptr = NULL;
    b->len = b->cap = 0;
    return out;
}

/* ------------------------------------------------------------------------------ */
/* UTF-8                                                                            */
/* ------------------------------------------------------------------------------ */

/* Append the UTF-8 encoding of code point `cp`. */
SLUICE_API void sluice_utf8_push(sluice_buf_t *b, uint32_t cp) {
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sluice_buf_push(b, out, n);
}

/*
 * Decode one code point at `s[0..len)` (len >= 1). Returns the number of bytes of a
 * valid sequence and sets *cp; or returns 0 and sets *bad to the length of the maximal
 * prefix of a valid sequence (at least 1): the bytes one U+FFFD replaces (Unicode's
 * "maximal subpart" practice, what Rust's from_utf8_lossy and Python's
 * decode(errors="replace") do).
 */
SLUICE_API size_t sluice_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp, size_t *bad) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t value;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        value = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        value = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        value = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= len) break;
        uint8_t next = s[i];
        uint8_t min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
        if (next < min || next > max) break;
        value = (value << 6) | (next & 0x3F);
    }
    if (i <= need) {
        *bad = i;
        return 0;
    }
    *cp = value;
    return need + 1;
}

/* `bytes` as valid UTF-8, each maximal invalid sequence replaced by U+FFFD; the
 * result is malloc'ed and NUL-terminated, its length in *out_len (may be NULL). */
SLUICE_API char *sluice_utf8_lossy(const void *bytes, size_t len, size_t *out_len) {
    const uint8_t *s = (const uint8_t *)bytes;
    sluice_buf_t b = {0};
    sluice_buf_push(&b, "", 0);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t bad = 0;
        size_t n = sluice_utf8_decode(s + i, len - i, &cp, &bad);
        if (n > 0) {
            sluice_buf_push(&b, s + i, n);
            i += n;
        } else {
            sluice_buf_push(&b, "\xEF\xBF\xBD", 3);
            i += bad;
        }
    }
    if (out_len) *out_len = b.len;
    return sluice_buf_take(&b);
}

/* How many code points the valid UTF-8 `s[0..len)` holds. */
SLUICE_API size_t sluice_utf8_count(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((uint8_t)s[i] & 0xC0) != 0x80) n++;
    }
    return n;
}

/* Unicode's White_Space property (what the fingerprint removes from a line). */
SLUICE_API bool sluice_is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ------------------------------------------------------------------------------ */
/* The fingerprint (wit/plugin.wit, `finding.fingerprint`)                          */
/* ------------------------------------------------------------------------------ */

/* The most bytes of a source file the fingerprint reads; a longer file counts as
 * unreadable. */
#define SLUICE_FINGERPRINT_MAX_SOURCE ((size_t)64 << 20)

/* 64-bit FNV-1a of `n` parts joined by one 0xff byte, as 16 lowercase hex digits
 * into out[17]. */
SLUICE_API void sluice_fingerprint_hash(const char *const *parts, const size_t *lens, size_t n,
                                        char out[17]) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    const uint64_t prime = 0x100000001b3ULL;
    for (size_t p = 0; p < n; p++) {
        if (p > 0) {
            hash ^= 0xff;
            hash *= prime;
        }
        const uint8_t *bytes = (const uint8_t *)parts[p];
        for (size_t i = 0; i < lens[p]; i++) {
            hash ^= bytes[i];
            hash *= prime;
        }
    }
    snprintf(out, 17, "%016llx", (unsigned long long)hash);
}

/* The line `s[0..len)` (valid UTF-8) without its White_Space characters (malloc'ed). */
SLUICE_API char *sluice_fingerprint_normalize(const char *s, size_t len, size_t *out_len) {
    sluice_buf_t b = {0};
    sluice_buf_push(&b, "", 0);
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t bad = 0;
        size_t n = sluice_utf8_decode((const uint8_t *)s + i, len - i, &cp, &bad);
        if (n == 0) { /* not valid UTF-8: keep the byte */
            sluice_buf_push(&b, s + i, 1);
            i += 1;
            continue;
        }
        if (!sluice_is_white_space(cp)) sluice_buf_push(&b, s + i, n);
        i += n;
    }
    if (out_len) *out_len = b.len;
    return sluice_buf_take(&b);
}

/* The hash of a finding of `rule_id` in `path` whose line reads `line[0..len)`. */
SLUICE_API void sluice_fingerprint_line_hash(const char *rule_id, const char *path,
                                             const char *line, size_t len, char out[17]) {
    size_t norm_len;
    char *norm = sluice_fingerprint_normalize(line, len, &norm_len);
    const char *parts[4] = {"line", rule_id, path, norm};
    size_t lens[4] = {4, strlen(rule_id), strlen(path), norm_len};
    sluice_fingerprint_hash(parts, lens, 4, out);
    free(norm);
}

/* The hash when the finding's line cannot be had; `path` NULL without a location. */
SLUICE_API void sluice_fingerprint_message_hash(const char *rule_id, const char *path,
                                                const char *message, char out[17]) {
    const char *parts[4] = {"message", rule_id, path ? path : "", message};
    size_t lens[4] = {7, strlen(rule_id), path ? strlen(path) : 0, strlen(message)};
    sluice_fingerprint_hash(parts, lens, 4, out);
}

/* What the fingerprint needs of one finding (NUL-terminated strings; 0 for a missing
 * line or column; `path` NULL without a location). */
typedef struct {
    const char *rule_id;
    const char *message;
    const char *path;
    uint32_t line;
    uint32_t column;
} sluice_fingerprint_key_t;

/* The bytes of the file at `path` (relative to `workdir` unless absolute), at most
 * SLUICE_FINGERPRINT_MAX_SOURCE; NULL when it cannot be read or is longer. */
SLUICE_API char *sluice_read_file(const char *workdir, const char *path, size_t *len);

/* Line `line` (1-based) of the UTF-8 text `text[0..len)`, split at '\n' with a trailing
 * '\r' dropped: sets *start and *line_len; false past the end. */
SLUICE_API bool sluice_text_line(const char *text, size_t len, uint32_t line, size_t *start,
                                 size_t *line_len) {
    size_t at = 0;
    for (uint32_t n = 1; n < line; n++) {
        const char *nl = (const char *)memchr(text + at, '\n', len - at);
        if (!nl) return false;
        at = (size_t)(nl - text) + 1;
    }
    const char *nl = (const char *)memchr(text + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - text) : len;
    if (end > at && text[end - 1] == '\r') end--;
    *start = at;
    *line_len = end - at;
    return true;
}

/*
 * The fingerprints of `n` findings (those of one report that carry none of their own,
 * in report order) into out[i] (each at least 32 bytes): `<hash>:<occurrence>`. Files
 * are read relative to `workdir`, each once.
 */
SLUICE_API void sluice_fingerprints(const sluice_fingerprint_key_t *keys, size_t n,
                                    const char *workdir, char (*out)[32]) {
    char (*hashes)[17] = (char (*)[17])sluice_xmalloc(n * 17);
    bool *done = (bool *)calloc(n ? n : 1, sizeof(bool));
    if (!done) sluice_panic("out of memory");
    /* Findings with a line: file by file. */
    for (size_t i = 0; i < n; i++) {
        if (done[i] || !keys[i].path || keys[i].line < 1) continue;
        size_t raw_len = 0;
        char *raw = sluice_read_file(workdir, keys[i].path, &raw_len);
        size_t text_len = 0;
        char *text = raw ? sluice_utf8_lossy(raw, raw_len, &text_len) : NULL;
        free(raw);
        for (size_t j = i; j < n; j++) {
            if (done[j] || !keys[j].path || keys[j].line < 1) continue;
            if (strcmp(keys[j].path, keys[i].path) != 0) continue;
            size_t start, line_len;
            if (text && sluice_text_line(text, text_len, keys[j].line, &start, &line_len)) {
                sluice_fingerprint_line_hash(keys[j].rule_id, keys[j].path, text + start,
                                             line_len, hashes[j]);
                done[j] = true;
            }
        }
        free(text);
        /* Findings of this file whose line is missing take the message below; mark
         * the file handled by leaving them not done. */
        for (size_t j = i; j < n; j++) {
            if (!done[j] && keys[j].path && keys[j].line >= 1 &&
                strcmp(keys[j].path, keys[i].path) == 0) {
                sluice_fingerprint_message_hash(keys[j].rule_id, keys[j].path, keys[j].message,
                                                hashes[j]);
                done[j] = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!done[i])
            sluice_fingerprint_message_hash(keys[i].rule_id, keys[i].path, keys[i].message,
                                            hashes[i]);
    }
    /* Occurrences in (line, column) order, ties in report order: a stable insertion
     * sort of the indexes. */
    size_t *order = (size_t *)sluice_xmalloc((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && (keys[order[j - 1]].line > keys[i].line ||
                         (keys[order[j - 1]].line == keys[i].line &&
                          keys[order[j - 1]].column > keys[i].column))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        unsigned count = 1;
        for (size_t m = 0; m < k; m++) {
            if (strcmp(hashes[order[m]], hashes[i]) == 0) count++;
        }
        snprintf(out[i], 32, "%s:%u", hashes[i], count);
    }
    free(order);
    free(done);
    free(hashes);
}

/* ------------------------------------------------------------------------------ */
/* Paths                                                                            */
/* ------------------------------------------------------------------------------ */

/*
 * `path` resolved against `workdir` (unless absolute), `.` and `..` removed lexically
 * and no trailing '/': the absolute path the plugin opens (malloc'ed). WASI has no
 * working directory, so relative paths must be made absolute: the granted folders
 * are preopened at their own absolute paths.
 */
SLUICE_API char *sluice_path_resolve(const char *workdir, const char *path) {
    sluice_buf_t joined = {0};
    if (path[0] != '/') {
        sluice_buf_push(&joined, workdir, strlen(workdir));
        sluice_buf_byte(&joined, '/');
    }
    sluice_buf_push(&joined, path, strlen(path));
    char *in = sluice_buf_take(&joined);
    /* Components onto a stack. */
    sluice_buf_t out = {0};
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        const char *end = p;
        while (*end && *end != '/') end++;
        size_t len = (size_t)(end - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (out.len > 0 && out.ptr[out.len - 1] != '/') out.len--;
            if (out.len > 0) out.len--; /* the '/' */
            if (out.ptr) out.ptr[out.len] = '\0';
        } else {
            sluice_buf_byte(&out, '/');
            sluice_buf_push(&out, p, len);
        }
        p = end;
    }
    free(in);
    if (out.len == 0) sluice_buf_byte(&out, '/');
    return sluice_buf_take(&out);
}

/* Whether the absolute, resolved `path` is `folder` or inside it. */
SLUICE_API bool sluice_path_within(const char *path, const char *folder) {
    size_t n = strlen(folder);
    while (n > 1 && folder[n - 1] == '/') n--;
    if (n == 1 && folder[0] == '/') return true;
    return strncmp(path, folder, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The path a finding shows for the absolute `file`: relative to `workdir` with '/'
 * and no leading "./", or `file` itself outside it (malloc'ed). */
SLUICE_API char *sluice_path_shown(const char *file, const char *workdir) {
    char *base = sluice_path_resolve("/", workdir);
    char *shown;
    if (strcmp(base, "/") == 0) {
        shown = sluice_strdup(file[0] == '/' ? file + 1 : file);
    } else if (sluice_path_within(file, base) && file[strlen(base)] == '/') {
        shown = sluice_strdup(file + strlen(base) + 1);
    } else {
        shown = sluice_strdup(file);
    }
    free(base);
    return shown;
}

SLUICE_API char *sluice_read_file(const char *workdir, const char *path, size_t *len) {
    char *absolute = sluice_path_resolve(workdir ? workdir : "/", path);
    FILE *f = fopen(absolute, "rb");
    free(absolute);
    if (!f) return NULL;
    sluice_buf_t b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sluice_buf_push(&b, chunk, n);
        if (b.len > SLUICE_FINGERPRINT_MAX_SOURCE) break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || b.len > SLUICE_FINGERPRINT_MAX_SOURCE) {
        free(b.ptr);
        return NULL;
    }
    sluice_buf_push(&b, "", 0);
    *len = b.len;
    return sluice_buf_take(&b);
}

/* ------------------------------------------------------------------------------ */
/* JSON (the step's `with` table)                                                   */
/* ------------------------------------------------------------------------------ */

typedef enum {
    SLUICE_JSON_NULL,
    SLUICE_JSON_BOOL,
    SLUICE_JSON_NUMBER,
    SLUICE_JSON_STRING,
    SLUICE_JSON_ARRAY,
    SLUICE_JSON_OBJECT,
} sluice_json_kind_t;

/* A parsed JSON value. Arrays and objects hold `len` items; an object's items carry
 * their `key`. Strings are NUL-terminated UTF-8 (`len` bytes, which may hold NULs). */
typedef struct sluice_json {
    sluice_json_kind_t kind;
    bool boolean;
    double number;
    char *string;
    size_t len;
    struct sluice_json *items;
    char *key;
} sluice_json_t;

typedef struct {
    const char *s;
    size_t len;
    size_t at;
    char error[160];
} sluice_json_parser_t;

SLUICE_API void sluice_json_free(sluice_json_t *v) {
    if (!v) return;
    if (v->kind == SLUICE_JSON_ARRAY || v->kind == SLUICE_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            free(v->items[i].key); /* before sluice_json_free clears it */
            sluice_json_free(&v->items[i]);
        }
        free(v->items);
    }
    free(v->string);
    memset(v, 0, sizeof *v);
}

static bool sluice_json_value(sluice_json_parser_t *p, sluice_json_t *out, int depth);

static void sluice_json_ws(sluice_json_parser_t *p) {
    while (p->at < p->len && (p->s[p->at] == ' ' || p->s[p->at] == '\t' ||
                              p->s[p->at] == '\n' || p->s[p->at] == '\r'))
        p->at++;
}

static bool sluice_json_fail(sluice_json_parser_t *p, const char *what) {
    snprintf(p->error, sizeof p->error, "%s at byte %zu", what, p->at);
    return false;
}

static int sluice_json_hex4(sluice_json_parser_t *p) {
    if (p->at + 4 > p->len) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->at + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    p->at += 4;
    return v;
}

static bool sluice_json_string(sluice_json_parser_t *p, char **out, size_t *out_len) {
    p->at++; /* the opening quote */
    sluice_buf_t b = {0};
    sluice_buf_push(&b, "", 0);
    while (p->at < p->len) {
        char c = p->s[p->at++];
        if (c == '"') {
            *out_len = b.len;
            *out = sluice_buf_take(&b);
            return true;
        }
        if ((unsigned char)c < 0x20) {
            free(b.ptr);
            return sluice_json_fail(p, "a control character in a string");
        }
        if (c != '\\') {
            sluice_buf_byte(&b, c);
            continue;
        }
        if (p->at >= p->len) break;
        char e = p->s[p->at++];
        switch (e) {
        case '"': sluice_buf_byte(&b, '"'); break;
        case '\\': sluice_buf_byte(&b, '\\'); break;
        case '/': sluice_buf_byte(&b, '/'); break;
        case 'b': sluice_buf_byte(&b, '\b'); break;
        case 'f': sluice_buf_byte(&b, '\f'); break;
        case 'n': sluice_buf_byte(&b, '\n'); break;
        case 'r': sluice_buf_byte(&b, '\r'); break;
        case 't': sluice_buf_byte(&b, '\t'); break;
        case 'u': {
            int hi = sluice_json_hex4(p);
            if (hi < 0) {
                free(b.ptr);
                return sluice_json_fail(p, "a bad \\u escape");
            }
            uint32_t cp = (uint32_t)hi;
            if (hi >= 0xD800 && hi <= 0xDBFF && p->at + 1 < p->len && p->s[p->at] == '\\' &&
                p->s[p->at + 1] == 'u') {
                size_t save = p->at;
                p->at += 2;
                int lo = sluice_json_hex4(p);
                if (lo >= 0xDC00 && lo <= 0xDFFF)
                    cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                else
                    p->at = save;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate */
            sluice_utf8_push(&b, cp);
            break;
        }
        default:
            free(b.ptr);
            return sluice_json_fail(p, "a bad escape");
        }
    }
    free(b.ptr);
    return sluice_json_fail(p, "an unterminated string");
}

static bool sluice_json_items(sluice_json_parser_t *p, sluice_json_t *out, bool object, int depth) {
    char close = object ? '}' : ']';
    p->at++;
    out->kind = object ? SLUICE_JSON_OBJECT : SLUICE_JSON_ARRAY;
    sluice_json_ws(p);
    if (p->at < p->len && p->s[p->at] == close) {
        p->at++;
        return true;
    }
    for (;;) {
        sluice_json_t item = {0};
        sluice_json_ws(p);
        if (object) {
            size_t key_len;
            if (p->at >= p->len || p->s[p->at] != '"') return sluice_json_fail(p, "expected a key");
            if (!sluice_json_string(p, &item.key, &key_len)) return false;
            sluice_json_ws(p);
            if (p->at >= p->len || p->s[p->at] != ':') {
                free(item.key);
                return sluice_json_fail(p, "expected `:`");
            }
            p->at++;
        }
        if (!sluice_json_value(p, &item, depth + 1)) {
            free(item.key);
            sluice_json_free(&item);
            return false;
        }
        out->items = (sluice_json_t *)sluice_xrealloc(out->items, (out->len + 1) * sizeof item);
        out->items[out->len++] = item;
        sluice_json_ws(p);
        if (p->at < p->len && p->s[p->at] == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->len && p->s[p->at] == close) {
            p->at++;
            return true;
        }
        return sluice_json_fail(p, object ? "expected `,` or `}`" : "expected `,` or `]`");
    }
}

static bool sluice_json_value(sluice_json_parser_t *p, sluice_json_t *out, int depth) {
    if (depth > 64) return sluice_json_fail(p, "nested too deep");
    sluice_json_ws(p);
    if (p->at >= p->len) return sluice_json_fail(p, "unexpected end");
    char c = p->s[p->at];
    if (c == '{' || c == '[') return sluice_json_items(p, out, c == '{', depth);
    if (c == '"') {
        out->kind = SLUICE_JSON_STRING;
        return sluice_json_string(p, &out->string, &out->len);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t n = strlen(words[w]);
        if (p->len - p->at >= n && memcmp(p->s + p->at, words[w], n) == 0) {
            p->at += n;
            out->kind = w == 2 ? SLUICE_JSON_NULL : SLUICE_JSON_BOOL;
            out->boolean = w == 0;
            return true;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (p->at < p->len && n + 1 < sizeof buf && p->s[p->at] != '\0' &&
               strchr("+-0123456789.eE", p->s[p->at]) != NULL)
            buf[n++] = p->s[p->at++];
        buf[n] = '\0';
        char *end;
        out->kind = SLUICE_JSON_NUMBER;
        out->number = strtod(buf, &end);
        if (*end != '\0') return sluice_json_fail(p, "a bad number");
        return true;
    }
    return sluice_json_fail(p, "unexpected character");
}

/* Parse `len` bytes of JSON text into *out. On error, returns false and writes what
 * is wrong (with the byte offset) into error[error_len]. */
SLUICE_API bool sluice_json_parse(const char *text, size_t len, sluice_json_t *out, char *error,
                                  size_t error_len) {
    sluice_json_parser_t p = {text, len, 0, {0}};
    memset(out, 0, sizeof *out);
    bool ok = sluice_json_value(&p, out, 0);
    if (ok) {
        sluice_json_ws(&p);
        if (p.at != p.len) ok = sluice_json_fail(&p, "unexpected text after the value");
    }
    if (!ok) {
        sluice_json_free(out);
        if (error && error_len) snprintf(error, error_len, "%s", p.error);
    }
    return ok;
}

/* The member `key` of object `v`, or NULL (also when `v` is no object). */
SLUICE_API const sluice_json_t *sluice_json_get(const sluice_json_t *v, const char *key) {
    if (!v || v->kind != SLUICE_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < v->len; i++) {
        if (strcmp(v->items[i].key, key) == 0) return &v->items[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------------------ */
/* Over the bindings of world `step` (step.h from `sluice plugin bindgen --lang c`) */
/* ------------------------------------------------------------------------------ */
#ifndef SLUICE_PLUGIN_NO_BINDINGS
#include "step.h"

typedef exports_sluice_plugin_plugin_descriptor_t sluice_descriptor_t;
typedef exports_sluice_plugin_plugin_step_input_t sluice_step_input_t;
typedef exports_sluice_plugin_plugin_report_t sluice_report_t;
typedef exports_sluice_plugin_plugin_run_error_t sluice_run_error_t;
typedef sluice_plugin_types_finding_t sluice_finding_t;
typedef sluice_plugin_types_severity_t sluice_severity_t;
typedef sluice_plugin_types_status_t sluice_status_t;
typedef sluice_plugin_types_capability_t sluice_capability_t;

#define SLUICE_STATUS_PASSED SLUICE_PLUGIN_TYPES_STATUS_PASSED
#define SLUICE_STATUS_FAILED SLUICE_PLUGIN_TYPES_STATUS_FAILED
#define SLUICE_STATUS_WARNED SLUICE_PLUGIN_TYPES_STATUS_WARNED
#define SLUICE_STATUS_SKIPPED SLUICE_PLUGIN_TYPES_STATUS_SKIPPED
#define SLUICE_SEVERITY_INFO SLUICE_PLUGIN_TYPES_SEVERITY_INFO
#define SLUICE_SEVERITY_LOW SLUICE_PLUGIN_TYPES_SEVERITY_LOW
#define SLUICE_SEVERITY_MEDIUM SLUICE_PLUGIN_TYPES_SEVERITY_MEDIUM
#define SLUICE_SEVERITY_HIGH SLUICE_PLUGIN_TYPES_SEVERITY_HIGH
#define SLUICE_SEVERITY_CRITICAL SLUICE_PLUGIN_TYPES_SEVERITY_CRITICAL
#define SLUICE_CAPABILITY_READ_FILES SLUICE_PLUGIN_TYPES_CAPABILITY_READ_FILES
#define SLUICE_CAPABILITY_WRITE_FILES SLUICE_PLUGIN_TYPES_CAPABILITY_WRITE_FILES
#define SLUICE_CAPABILITY_EXEC SLUICE_PLUGIN_TYPES_CAPABILITY_EXEC
#define SLUICE_CAPABILITY_NETWORK SLUICE_PLUGIN_TYPES_CAPABILITY_NETWORK
#define SLUICE_CAPABILITY_ENV SLUICE_PLUGIN_TYPES_CAPABILITY_ENV

/* A copy of the C string `s` as a binding string (owned: freed with the report). */
SLUICE_API step_string_t sluice_string(const char *s) {
    step_string_t out;
    out.len = strlen(s);
    out.ptr = (uint8_t *)sluice_strndup(s, out.len);
    return out;
}

/* A binding string as a new C string (malloc'ed). */
SLUICE_API char *sluice_cstr(const step_string_t *s) {
    return sluice_strndup((const char *)s->ptr, s->len);
}

/* The descriptor `describe` returns; `schema_json` is the JSON Schema (draft
 * 2020-12) of the `with` table. Add capabilities with sluice_descriptor_capability. */
SLUICE_API void sluice_descriptor(sluice_descriptor_t *ret, const char *name, const char *version,
                                  const char *summary, const char *schema_json) {
    memset(ret, 0, sizeof *ret);
    ret->name = sluice_string(name);
    ret->version = sluice_string(version);
    ret->summary = sluice_string(summary);
    ret->config_schema = sluice_string(schema_json);
}

SLUICE_API void sluice_descriptor_capability(sluice_descriptor_t *d, sluice_capability_t c) {
    d->capabilities.ptr = (sluice_capability_t *)sluice_xrealloc(
        d->capabilities.ptr, (d->capabilities.len + 1) * sizeof c);
    d->capabilities.ptr[d->capabilities.len++] = c;
}

/* An empty report: the given status and summary, no findings, tests, metrics, data
 * points, artifacts or outputs. */
SLUICE_API void sluice_report(sluice_report_t *ret, sluice_status_t status, const char *summary) {
    memset(ret, 0, sizeof *ret);
    ret->status = status;
    ret->summary = sluice_string(summary);
}

SLUICE_API void sluice_report_summary(sluice_report_t *r, sluice_status_t status,
                                      const char *summary) {
    free(r->summary.ptr);
    r->status = status;
    r->summary = sluice_string(summary);
}

/* A new finding at the end of the report's findings: `rule_id`, `severity` and
 * `message`, no location, an empty fingerprint (the host, or
 * sluice_report_fingerprints, computes it), no security severity, help URI or
 * properties. The pointer is valid until the next finding is added. */
SLUICE_API sluice_finding_t *sluice_report_finding(sluice_report_t *r, const char *rule_id,
                                                   sluice_severity_t severity,
                                                   const char *message) {
    r->findings.ptr = (sluice_finding_t *)sluice_xrealloc(
        r->findings.ptr, (r->findings.len + 1) * sizeof(sluice_finding_t));
    sluice_finding_t *f = &r->findings.ptr[r->findings.len++];
    memset(f, 0, sizeof *f);
    f->rule_id = sluice_string(rule_id);
    f->severity = severity;
    f->message = sluice_string(message);
    f->fingerprint = sluice_string("");
    return f;
}

/* Where the finding is: `path` relative to the pipeline's folder, 1-based `line` and
 * `column` (0: unknown). */
SLUICE_API void sluice_finding_at(sluice_finding_t *f, const char *path, uint32_t line,
                                  uint32_t column) {
    if (f->location.is_some) free(f->location.val.path.ptr);
    memset(&f->location, 0, sizeof f->location);
    f->location.is_some = true;
    f->location.val.path = sluice_string(path);
    f->location.val.line.is_some = line > 0;
    f->location.val.line.val = line;
    f->location.val.column.is_some = column > 0;
    f->location.val.column.val = column;
}

/* The inclusive end of the finding's location (call sluice_finding_at first). */
SLUICE_API void sluice_finding_end(sluice_finding_t *f, uint32_t end_line, uint32_t end_column) {
    f->location.val.end_line.is_some = end_line > 0;
    f->location.val.end_line.val = end_line;
    f->location.val.end_column.is_some = end_column > 0;
    f->location.val.end_column.val = end_column;
}

SLUICE_API void sluice_finding_fingerprint(sluice_finding_t *f, const char *fingerprint) {
    free(f->fingerprint.ptr);
    f->fingerprint = sluice_string(fingerprint);
}

SLUICE_API void sluice_finding_property(sluice_finding_t *f, const char *name, const char *value) {
    f->properties.ptr = (step_tuple2_string_string_t *)sluice_xrealloc(
        f->properties.ptr, (f->properties.len + 1) * sizeof(step_tuple2_string_string_t));
    step_tuple2_string_string_t *t = &f->properties.ptr[f->properties.len++];
    t->f0 = sluice_string(name);
    t->f1 = sluice_string(value);
}

/* A named output for later steps. */
SLUICE_API void sluice_report_output(sluice_report_t *r, const char *name, const char *value) {
    r->outputs.ptr = (step_tuple2_string_string_t *)sluice_xrealloc(
        r->outputs.ptr, (r->outputs.len + 1) * sizeof(step_tuple2_string_string_t));
    step_tuple2_string_string_t *t = &r->outputs.ptr[r->outputs.len++];
    t->f0 = sluice_string(name);
    t->f1 = sluice_string(value);
}

/* Give every finding whose fingerprint is empty the contract's fingerprint, reading
 * source lines relative to `workdir`. A 0.1.5 host computes the same when a plugin
 * leaves them empty; doing it in the plugin makes the report complete on older hosts
 * and in native tests. */
SLUICE_API void sluice_report_fingerprints(sluice_report_t *r, const char *workdir) {
    size_t n = 0;
    for (size_t i = 0; i < r->findings.len; i++)
        if (r->findings.ptr[i].fingerprint.len == 0) n++;
    if (n == 0) return;
    sluice_fingerprint_key_t *keys = (sluice_fingerprint_key_t *)sluice_xmalloc(n * sizeof *keys);
    char **owned = (char **)sluice_xmalloc(3 * n * sizeof(char *));
    size_t *index = (size_t *)sluice_xmalloc(n * sizeof(size_t));
    size_t k = 0;
    for (size_t i = 0; i < r->findings.len; i++) {
        sluice_finding_t *f = &r->findings.ptr[i];
        if (f->fingerprint.len != 0) continue;
        owned[3 * k] = sluice_cstr(&f->rule_id);
        owned[3 * k + 1] = sluice_cstr(&f->message);
        owned[3 * k + 2] = f->location.is_some ? sluice_cstr(&f->location.val.path) : NULL;
        keys[k].rule_id = owned[3 * k];
        keys[k].message = owned[3 * k + 1];
        keys[k].path = owned[3 * k + 2];
        keys[k].line = f->location.is_some && f->location.val.line.is_some
                           ? f->location.val.line.val : 0;
        keys[k].column = f->location.is_some && f->location.val.column.is_some
                             ? f->location.val.column.val : 0;
        index[k++] = i;
    }
    char (*prints)[32] = (char (*)[32])sluice_xmalloc(n * 32);
    sluice_fingerprints(keys, n, workdir, prints);
    for (k = 0; k < n; k++) {
        sluice_finding_fingerprint(&r->findings.ptr[index[k]], prints[k]);
        free(owned[3 * k]);
        free(owned[3 * k + 1]);
        free(owned[3 * k + 2]);
    }
    free(prints);
    free(index);
    free(owned);
    free(keys);
}

/* Run errors: each sets *err and returns false, so that `run` can end with
 * `return sluice_fail_denied(err, ...);`. */
SLUICE_API bool sluice_fail_kind(sluice_run_error_t *err, uint8_t tag, const char *fmt,
                                 va_list args) {
    char *text = sluice_vformat(fmt, args);
    memset(err, 0, sizeof *err);
    err->tag = tag;
    err->val.failed.ptr = (uint8_t *)text; /* every case holds one string */
    err->val.failed.len = strlen(text);
    return false;
}

/* The configuration made no sense, although it matched the schema. */
SLUICE_PRINTF(2, 3)
SLUICE_API bool sluice_fail_invalid_config(sluice_run_error_t *err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    bool r = sluice_fail_kind(err, SLUICE_PLUGIN_TYPES_RUN_ERROR_INVALID_CONFIG, fmt, args);
    va_end(args);
    return r;
}

/* The step needed access it was not granted: say which grant to add. */
SLUICE_PRINTF(2, 3)
SLUICE_API bool sluice_fail_denied(sluice_run_error_t *err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    bool r = sluice_fail_kind(err, SLUICE_PLUGIN_TYPES_RUN_ERROR_DENIED, fmt, args);
    va_end(args);
    return r;
}

/* Anything else. */
SLUICE_PRINTF(2, 3)
SLUICE_API bool sluice_fail(sluice_run_error_t *err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    bool r = sluice_fail_kind(err, SLUICE_PLUGIN_TYPES_RUN_ERROR_FAILED, fmt, args);
    va_end(args);
    return r;
}

/* The step's input as C strings: `workdir` and the `with` table parsed. */
typedef struct {
    char *workdir;
    sluice_json_t config;
    /* The `grants` import's answer, fetched on first use. */
    bool have_grants;
    sluice_plugin_grants_granted_t grants;
} sluice_step_t;

/* Read `input` into *step. A `with` table that is not JSON (the host validated it,
 * so this means a bug) is `invalid-config`. */
SLUICE_API bool sluice_step_open(sluice_step_t *step, const sluice_step_input_t *input,
                                 sluice_run_error_t *err) {
    memset(step, 0, sizeof *step);
    step->workdir = sluice_cstr(&input->workdir);
    char why[200];
    if (!sluice_json_parse((const char *)input->config.ptr, input->config.len, &step->config, why,
                           sizeof why))
        return sluice_fail_invalid_config(err, "the step's `with` table is not JSON: %s", why);
    return true;
}

SLUICE_API void sluice_step_close(sluice_step_t *step) {
    free(step->workdir);
    sluice_json_free(&step->config);
    if (step->have_grants) sluice_plugin_grants_granted_free(&step->grants);
    memset(step, 0, sizeof *step);
}

/* Whether the absolute, resolved `path` lies in one of the step's `read` or `write`
 * folders (from the `grants` import). */
SLUICE_API bool sluice_may_read(sluice_step_t *step, const char *path) {
    if (!step->have_grants) {
        sluice_plugin_grants_current(&step->grants);
        step->have_grants = true;
    }
    const step_list_string_t *lists[2] = {&step->grants.read, &step->grants.write};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->len; i++) {
            char *folder = sluice_cstr(&lists[l]->ptr[i]);
            bool inside = sluice_path_within(path, folder);
            free(folder);
            if (inside) return true;
        }
    }
    return false;
}

/*
 * `path` (as the configuration gave it) resolved against the workdir, and stat'ed
 * into *st. When it cannot be: `run-error::denied` naming the grant to add if no read
 * or write grant covers it (wasi-libc says ENOTCAPABLE then, which names no grant),
 * else `failed` with the reason. Returns the absolute path (malloc'ed) or NULL with
 * *err set.
 */
SLUICE_API char *sluice_require_read(sluice_step_t *step, const char *path, struct stat *st,
                                     sluice_run_error_t *err) {
    char *absolute = sluice_path_resolve(step->workdir, path);
    if (stat(absolute, st) == 0) return absolute;
    int e = errno;
    bool covered = sluice_may_read(step, absolute);
    free(absolute);
    if (!covered
#ifdef ENOTCAPABLE
        || e == ENOTCAPABLE
#endif
    ) {
        sluice_fail_denied(err,
                           "cannot read `%s`: the step has no read grant covering it; add "
                           "`read = [\"%s\"]` to the step's grants",
                           path, path);
    } else if (e == ENOENT || e == ENOTDIR) {
        sluice_fail(err, "cannot read `%s`: no such file or folder", path);
    } else {
        sluice_fail(err, "cannot read `%s`: %s", path, strerror(e));
    }
    return NULL;
}

/* Log a line into the step log (levels: SLUICE_PLUGIN_LOG_LEVEL_*). */
SLUICE_API void sluice_log(sluice_plugin_log_level_t level, const char *message) {
    step_string_t text;
    text.ptr = (uint8_t *)message;
    text.len = strlen(message);
    step_list_tuple2_string_string_t fields = {NULL, 0};
    sluice_plugin_log_write(level, &text, &fields);
}

#endif /* SLUICE_PLUGIN_NO_BINDINGS */

#endif /* SLUICE_PLUGIN_H */
