/*
 * {{name}}: a Sluice plugin that finds the lines matching a pattern in the files under
 * `paths`, one finding per match (rule `{{name}}/match`).
 *
 * It defines the two functions of the contract's `plugin` export that the bindings in
 * gen/step.h declare, `describe` and `run`, on the helper sluice_plugin.h. Build the
 * component with ./build.sh.
 */
#include "sluice_plugin.h"

/* The JSON Schema of the step's `with` table: closed (`additionalProperties: false`),
 * with an example that `sluice plugin check` runs. */
static const char CONFIG_SCHEMA[] =
    "{"
    "\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
    "\"title\": \"Config\","
    "\"description\": \"The step's `with` table.\","
    "\"type\": \"object\","
    "\"properties\": {"
    "\"paths\": {\"description\": \"Files or folders to scan, relative to the pipeline's folder.\","
    " \"type\": \"array\", \"items\": {\"type\": \"string\"}, \"default\": [\".\"]},"
    "\"pattern\": {\"description\": \"The text to look for: a literal, not a regular expression.\","
    " \"type\": \"string\", \"minLength\": 1, \"default\": \"TODO\"}"
    "},"
    "\"additionalProperties\": false,"
    "\"examples\": [{\"paths\": [\".\"], \"pattern\": \"TODO\"}]"
    "}";

void exports_sluice_plugin_plugin_describe(sluice_descriptor_t *ret) {
    sluice_descriptor(ret, "{{name}}", "0.1.0",
                      "Finds the lines matching a pattern in the files under `paths`.",
                      CONFIG_SCHEMA);
    sluice_descriptor_capability(ret, SLUICE_CAPABILITY_READ_FILES);
}

/* A list of file paths (malloc'ed strings). */
typedef struct {
    char **items;
    size_t len;
} file_list_t;

static void file_list_push(file_list_t *files, char *path) {
    files->items = (char **)sluice_xrealloc(files->items, (files->len + 1) * sizeof(char *));
    files->items[files->len++] = path;
}

static void file_list_free(file_list_t *files) {
    for (size_t i = 0; i < files->len; i++) free(files->items[i]);
    free(files->items);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file under `folder`, entries in byte order of their names, skipping names that
 * start with `.`. */
static bool walk(const char *folder, file_list_t *files, sluice_run_error_t *err) {
    DIR *dir = opendir(folder);
    if (!dir) return sluice_fail(err, "cannot list %s: %s", folder, strerror(errno));
    file_list_t names = {0};
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') file_list_push(&names, sluice_strdup(entry->d_name));
    }
    closedir(dir);
    qsort(names.items, names.len, sizeof(char *), by_name);
    bool ok = true;
    for (size_t i = 0; ok && i < names.len; i++) {
        char *path = sluice_format("%s/%s", folder, names.items[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            ok = walk(path, files, err);
            free(path);
        } else {
            file_list_push(files, path);
        }
    }
    file_list_free(&names);
    return ok;
}

/* One finding per non-overlapping occurrence of `pattern` in the file: 1-based line,
 * and column in code points. Lines end at '\n'; a trailing '\r' is not part of the
 * line. */
static bool scan_file(sluice_report_t *report, const char *file, const char *shown,
                      const char *pattern, const char *message, size_t *count,
                      sluice_run_error_t *err) {
    FILE *f = fopen(file, "rb");
    if (!f) return sluice_fail(err, "cannot read %s: %s", file, strerror(errno));
    sluice_buf_t raw = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sluice_buf_push(&raw, chunk, n);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(raw.ptr);
        return sluice_fail(err, "cannot read %s: %s", file, strerror(errno));
    }
    size_t len;
    char *text = sluice_utf8_lossy(raw.ptr, raw.len, &len);
    free(raw.ptr);
    size_t pattern_len = strlen(pattern);
    uint32_t line = 1;
    size_t start = 0;
    while (start <= len) {
        const char *nl = (const char *)memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t line_end = end > start && text[end - 1] == '\r' ? end - 1 : end;
        size_t at = start;
        while (at + pattern_len <= line_end) {
            if (memcmp(text + at, pattern, pattern_len) == 0) {
                uint32_t column = (uint32_t)sluice_utf8_count(text + start, at - start) + 1;
                sluice_finding_t *finding =
                    sluice_report_finding(report, "{{name}}/match", SLUICE_SEVERITY_INFO, message);
                sluice_finding_at(finding, shown, line, column);
                (*count)++;
                at += pattern_len;
            } else {
                at++;
            }
        }
        if (!nl) break;
        start = end + 1;
        line++;
    }
    free(text);
    return true;
}

static char *plural(size_t count, const char *one, const char *many) {
    return sluice_format("%zu %s", count, count == 1 ? one : many);
}

/* Scan the step's `paths` for its `pattern` into *report. */
static bool scan(sluice_step_t *step, sluice_report_t *report, sluice_run_error_t *err) {
    const sluice_json_t *paths = sluice_json_get(&step->config, "paths");
    const sluice_json_t *pattern_value = sluice_json_get(&step->config, "pattern");
    if (paths && paths->kind != SLUICE_JSON_ARRAY)
        return sluice_fail_invalid_config(err, "`paths` must be a list of strings");
    for (size_t i = 0; paths && i < paths->len; i++) {
        if (paths->items[i].kind != SLUICE_JSON_STRING)
            return sluice_fail_invalid_config(err, "`paths` must be a list of strings");
    }
    const char *pattern = "TODO";
    if (pattern_value) {
        if (pattern_value->kind != SLUICE_JSON_STRING || pattern_value->len == 0)
            return sluice_fail_invalid_config(err, "`pattern` is empty: give the text to look for");
        pattern = pattern_value->string;
    }

    file_list_t files = {0};
    size_t npaths = paths ? paths->len : 1;
    for (size_t i = 0; i < npaths; i++) {
        const char *path = paths ? paths->items[i].string : ".";
        struct stat st;
        /* Outside every grant: run-error::denied naming the grant to add. */
        char *absolute = sluice_require_read(step, path, &st, err);
        if (!absolute) {
            file_list_free(&files);
            return false;
        }
        if (S_ISDIR(st.st_mode)) {
            bool ok = walk(absolute, &files, err);
            free(absolute);
            if (!ok) {
                file_list_free(&files);
                return false;
            }
        } else {
            file_list_push(&files, absolute);
        }
    }

    sluice_report(report, SLUICE_STATUS_PASSED, "");
    char *message = sluice_format("`%s` found", pattern);
    size_t count = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < files.len; i++) {
        char *shown = sluice_path_shown(files.items[i], step->workdir);
        ok = scan_file(report, files.items[i], shown, pattern, message, &count, err);
        free(shown);
    }
    free(message);
    if (ok) {
        char *in_files = plural(files.len, "file", "files");
        char *summary;
        if (count == 0) {
            summary = sluice_format("no `%s` in %s", pattern, in_files);
            sluice_report_summary(report, SLUICE_STATUS_PASSED, summary);
        } else {
            char *matches = plural(count, "match", "matches");
            summary = sluice_format("%s of `%s` in %s", matches, pattern, in_files);
            sluice_report_summary(report, SLUICE_STATUS_WARNED, summary);
            free(matches);
        }
        free(summary);
        free(in_files);
        char *total = sluice_format("%zu", count);
        sluice_report_output(report, "matches", total);
        free(total);
        /* The contract's fingerprints (the host would compute the same). */
        sluice_report_fingerprints(report, step->workdir);
    } else {
        sluice_plugin_types_report_free(report);
    }
    file_list_free(&files);
    return ok;
}

bool exports_sluice_plugin_plugin_run(sluice_step_input_t *input, sluice_report_t *ret,
                                      sluice_run_error_t *err) {
    sluice_step_t step;
    bool ok = sluice_step_open(&step, input, err) && scan(&step, ret, err);
    sluice_step_close(&step);
    exports_sluice_plugin_plugin_step_input_free(input);
    return ok;
}
