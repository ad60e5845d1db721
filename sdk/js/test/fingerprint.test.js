// The fingerprint against the shared test vectors (crates/fingerprint/tests/vectors.json,
// copied next to this file so that a scaffolded project can run it too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { MAX_SOURCE_BYTES, assignFingerprints, fnv1a, messageHash, normalizeLine } from '../fingerprint.js';

const vectors = JSON.parse(readFileSync(new URL('./fingerprint-vectors.json', import.meta.url)));

test('hashes match the vectors', () => {
  assert.ok(vectors.hashes.length > 0);
  for (const { parts, hash } of vectors.hashes) {
    assert.equal(fnv1a(parts), hash, JSON.stringify(parts));
  }
});

test('line normalization matches the vectors', () => {
  for (const { line, normalized } of vectors.normalize) {
    assert.equal(normalizeLine(line), normalized, JSON.stringify(line));
  }
});

for (const vector of vectors.cases) {
  test(`case ${vector.name}: ${vector.about}`, () => {
    const files = new Map(
      Object.entries(vector.files ?? {}).map(([path, file]) => [
        path,
        file.hex !== undefined ? Buffer.from(file.hex, 'hex') : new TextEncoder().encode(file.text),
      ]),
    );
    const findings = vector.findings.map((f) => ({
      ruleId: f.rule_id,
      message: f.message,
      location:
        f.path === undefined
          ? undefined
          : { path: f.path, line: f.line, column: f.column, endLine: undefined, endColumn: undefined },
      fingerprint: '',
    }));
    assignFingerprints(findings, (path) => files.get(path));
    assert.deepEqual(
      findings.map((f) => f.fingerprint),
      vector.fingerprints,
    );
  });
}

test('a fingerprint the plugin set is kept', () => {
  const findings = [{ ruleId: 'r', message: 'm', fingerprint: 'mine' }];
  assignFingerprints(findings, () => undefined);
  assert.equal(findings[0].fingerprint, 'mine');
});

test('a file over the 64 MiB bound takes the message fallback', () => {
  const big = { length: MAX_SOURCE_BYTES + 1 };
  const findings = [{ ruleId: 'r', message: 'm', location: { path: 'big.txt', line: 1, column: 1 }, fingerprint: '' }];
  assignFingerprints(findings, () => /** @type {any} */ (big));
  assert.equal(findings[0].fingerprint, `${messageHash('r', 'big.txt', 'm')}:1`);
});
