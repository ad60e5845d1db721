/*
 * Native unit tests of sluice_plugin.h's parts that need no bindings: the fingerprint
 * against the contract's test vectors (vectors.h), UTF-8, JSON and paths. Built and run
 * by the project's ./test.sh with the machine's C compiler:
 *
 *     cc -std=c11 -Wall -Wextra -Werror -I sluice_plugin -o target/test sluice_plugin/test/test_sluice_plugin.c
 */
#define _POSIX_C_SOURCE 200809L
#define SLUICE_PLUGIN_NO_BINDINGS
#include "sluice_plugin.h"
#include "vectors.h"

#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                         \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static void write_file(const char *dir, const char *path, const char *bytes, size_t len) {
    char *full = sluice_format("%s/%s", dir, path);
    for (char *slash = strchr(full + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(full, 0755);
        *slash = '/';
    }
    FILE *f = fopen(full, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", full);
        exit(2);
    }
    fclose(f);
    free(full);
}

static void remove_tree(const char *dir) {
    char *command = sluice_format("rm -rf '%s'", dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(command);
}

static void test_hashes(void) {
    for (size_t i = 0; i < sizeof vec_hashes / sizeof vec_hashes[0]; i++) {
        char out[17];
        sluice_fingerprint_hash(vec_hashes[i].parts, vec_hashes[i].lens, vec_hashes[i].n, out);
        CHECK(strcmp(out, vec_hashes[i].hash) == 0, "hash %zu: %s, expected %s", i, out,
              vec_hashes[i].hash);
    }
}

static void test_normalize(void) {
    for (size_t i = 0; i < sizeof vec_normalize / sizeof vec_normalize[0]; i++) {
        size_t len;
        char *out = sluice_fingerprint_normalize(vec_normalize[i].line, vec_normalize[i].len, &len);
        CHECK(len == vec_normalize[i].normalized_len &&
                  memcmp(out, vec_normalize[i].normalized, len) == 0,
              "normalize %zu: got \"%s\"", i, out);
        free(out);
    }
}

static void test_cases(void) {
    for (size_t c = 0; c < sizeof vec_cases / sizeof vec_cases[0]; c++) {
        const vec_case_t *vc = &vec_cases[c];
        char dir[] = "/tmp/sluice-c-vectors-XXXXXX";
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
        for (size_t f = 0; f < vc->nfiles; f++)
            write_file(dir, vc->files[f].path, vc->files[f].bytes, vc->files[f].len);
        char (*out)[32] = malloc((vc->n ? vc->n : 1) * 32);
        sluice_fingerprints(vc->findings, vc->n, dir, out);
        for (size_t i = 0; i < vc->n; i++) {
            CHECK(strcmp(out[i], vc->expected[i]) == 0, "case %s, finding %zu: %s, expected %s",
                  vc->name, i, out[i], vc->expected[i]);
        }
        free(out);
        remove_tree(dir);
    }
}

static void test_utf8(void) {
    /* Maximal invalid subparts: one U+FFFD each (as Rust's from_utf8_lossy). */
    const char bad[] = "a\xF0\x9F\x98" "b\xC0\xAF" "c\xED\xA0\x80" "d";
    size_t len;
    char *out = sluice_utf8_lossy(bad, sizeof bad - 1, &len);
    const char *want = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "d";
    CHECK(strcmp(out, want) == 0, "lossy: got %s", out);
    free(out);
    CHECK(sluice_utf8_count("\xC3\xA9 TODO", 7) == 6, "code points of \"é TODO\"");
}

static void test_json(void) {
    sluice_json_t v;
    char why[160];
    const char *text = "{\"paths\": [\"src\", \"a\\u00e9\\ud83d\\ude00\"], \"pattern\": \"TO\\\"DO\", \"n\": -1.5e1, \"ok\": true, \"none\": null}";
    CHECK(sluice_json_parse(text, strlen(text), &v, why, sizeof why), "parse: %s", why);
    const sluice_json_t *paths = sluice_json_get(&v, "paths");
    CHECK(paths && paths->kind == SLUICE_JSON_ARRAY && paths->len == 2, "paths");
    CHECK(paths && strcmp(paths->items[1].string, "a\xC3\xA9\xF0\x9F\x98\x80") == 0, "escapes");
    const sluice_json_t *pattern = sluice_json_get(&v, "pattern");
    CHECK(pattern && strcmp(pattern->string, "TO\"DO") == 0, "pattern");
    CHECK(sluice_json_get(&v, "n")->number == -15.0, "number");
    CHECK(sluice_json_get(&v, "ok")->boolean, "bool");
    CHECK(sluice_json_get(&v, "none")->kind == SLUICE_JSON_NULL, "null");
    CHECK(sluice_json_get(&v, "missing") == NULL, "missing key");
    sluice_json_free(&v);
    CHECK(!sluice_json_parse("{\"a\": [1,}", 10, &v, why, sizeof why), "accepted bad JSON");
    CHECK(strstr(why, "at byte") != NULL, "error names the place: %s", why);
}

static void test_paths(void) {
    struct {
        const char *workdir, *path, *want;
    } cases[] = {
        {"/work/p", "src", "/work/p/src"},
        {"/work/p", ".", "/work/p"},
        {"/work/p/", "./src/../lib//x/", "/work/p/lib/x"},
        {"/work/p", "/abs/./file", "/abs/file"},
        {"/work/p", "../../..", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = sluice_path_resolve(cases[i].workdir, cases[i].path);
        CHECK(strcmp(got, cases[i].want) == 0, "resolve %s: %s", cases[i].path, got);
        free(got);
    }
    CHECK(sluice_path_within("/work/p/src", "/work/p"), "within");
    CHECK(sluice_path_within("/work/p", "/work/p/"), "within itself");
    CHECK(!sluice_path_within("/work/pp", "/work/p"), "a sibling with the same prefix");
    CHECK(sluice_path_within("/anything", "/"), "within the root");
    char *shown = sluice_path_shown("/work/p/src/main.c", "/work/p");
    CHECK(strcmp(shown, "src/main.c") == 0, "shown: %s", shown);
    free(shown);
    shown = sluice_path_shown("/elsewhere/x.c", "/work/p");
    CHECK(strcmp(shown, "/elsewhere/x.c") == 0, "shown outside: %s", shown);
    free(shown);
}

int main(void) {
    test_hashes();
    test_normalize();
    test_cases();
    test_utf8();
    test_json();
    test_paths();
    if (failures) {
        fprintf(stderr, "sluice_plugin.h: %d check(s) failed\n", failures);
        return 1;
    }
    printf("sluice_plugin.h: fingerprint vectors (%zu hashes, %zu lines, %zu cases), UTF-8, JSON and paths ok\n",
           sizeof vec_hashes / sizeof vec_hashes[0], sizeof vec_normalize / sizeof vec_normalize[0],
           sizeof vec_cases / sizeof vec_cases[0]);
    return 0;
}
