"""Unit tests for the scanning logic, run natively: `python3 -m unittest` in this folder."""

import os
import tempfile
import unittest

import todo_scan


class ParseConfigTest(unittest.TestCase):
    def test_defaults(self):
        config = todo_scan.parse_config({})
        self.assertEqual(config.paths, ["."])
        self.assertEqual(config.markers, ["TODO", "FIXME"])
        self.assertIsNone(config.fail_on)

    def test_errors_name_the_key(self):
        with self.assertRaisesRegex(todo_scan.ConfigError, "unknown key `path`"):
            todo_scan.parse_config({"path": ["src"]})
        with self.assertRaisesRegex(todo_scan.ConfigError, "`markers` must be a list"):
            todo_scan.parse_config({"markers": "TODO"})
        with self.assertRaisesRegex(todo_scan.ConfigError, "`fail-on`"):
            todo_scan.parse_config({"fail-on": 0})


class ScanTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.cwd = os.getcwd()
        os.chdir(self.dir.name)
        self.addCleanup(os.chdir, self.cwd)
        os.makedirs("src/.hidden")
        with open("src/a.c", "w") as handle:
            handle.write("int x; /* TODO: name this */\n// FIXME later\nTODOS are not markers\n")
        with open("src/.hidden/b.c", "w") as handle:
            handle.write("TODO hidden\n")
        with open("src/blob.bin", "wb") as handle:
            handle.write(b"\0TODO")

    def test_finds_markers_with_positions(self):
        outcome = todo_scan.scan(todo_scan.parse_config({"paths": ["src"]}))
        self.assertEqual(outcome.files, 2)
        found = [(hit.marker, hit.path, hit.line, hit.column, hit.text) for hit in outcome.hits]
        self.assertEqual(
            found,
            [("TODO", "src/a.c", 1, 11, "TODO: name this"), ("FIXME", "src/a.c", 2, 4, "FIXME later")],
        )

    def test_missing_path_is_not_a_grant_problem_here(self):
        with self.assertRaises(todo_scan.AccessError) as caught:
            list(todo_scan.files_under("nope"))
        self.assertFalse(caught.exception.missing_grant)

    def test_fingerprint_matches_the_rust_sdk(self):
        # Same value as sluice-sdk's `Finding::automatic_fingerprint("rule", Some("src/lib.rs"), "msg")`.
        self.assertEqual(todo_scan.fingerprint("rule", "src/lib.rs", "msg"), "41065994df997621")


if __name__ == "__main__":
    unittest.main()
