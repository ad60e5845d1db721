// The plugin's logic, natively: `node --test` (./test.sh runs it before the component's
// own checks). `nodeFiles` reads through Node's fs with the same grant checks as the
// component; `definePlugin` is exercised with a stand-in for the host.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { Denied, InvalidConfig, definePlugin } from '../sluice/index.js';
import { nodeBackend, nodeFiles, stepInput } from '../sluice/node.js';
import { matches, scan, spec } from './scan.js';

const project = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

test('every occurrence is a match, columns in code points', () => {
  assert.deepEqual([...matches('café TODO\n  TODO TODO\r\nTODOTODO', 'TODO')], [
    { line: 1, column: 6 },
    { line: 2, column: 3 },
    { line: 2, column: 8 },
    { line: 3, column: 1 },
    { line: 3, column: 5 },
  ]);
});

test('the fixtures have two TODOs in one file of two', () => {
  const result = scan({ paths: ['fixtures'], pattern: 'TODO' }, nodeFiles(project));
  assert.equal(result.status, 'warned');
  assert.equal(result.summary, '2 matches of `TODO` in 2 files');
  assert.deepEqual(
    result.findings.map((f) => [f.ruleId, f.severity, f.message, f.location.path, f.location.line, f.location.column]),
    [
      ['{{name}}/match', 'info', '`TODO` found', 'fixtures/src/main.c', 2, 8],
      ['{{name}}/match', 'info', '`TODO` found', 'fixtures/src/main.c', 3, 18],
    ],
  );
  assert.deepEqual(result.outputs, [['matches', '2']]);
});

test('no match passes', () => {
  const result = scan({ paths: ['fixtures/docs'], pattern: 'TODO' }, nodeFiles(project));
  assert.equal(result.status, 'passed');
  assert.equal(result.summary, 'no `TODO` in 1 file');
});

test('a path outside the grants is denied, naming the grant to add', () => {
  const files = nodeFiles(project, { read: [`${project}/fixtures`] });
  assert.throws(() => scan({ paths: ['src'] }, files), (error) => {
    assert.ok(error instanceof Denied);
    assert.equal(
      error.message,
      'cannot read `src`: the step has no read grant covering it; add `read = ["src"]` to the step\'s grants',
    );
    return true;
  });
});

test('a missing path fails, naming it', () => {
  assert.throws(() => scan({ paths: ['nowhere'] }, nodeFiles(project)), {
    message: 'cannot read `nowhere`: no such file or folder',
  });
});

test('an empty pattern is invalid', () => {
  assert.throws(() => scan({ pattern: '' }, nodeFiles(project)), InvalidConfig);
});

test('the plugin export fingerprints findings and maps errors to run-error', () => {
  const host = { grants: () => ({ read: [project], write: [] }), log: () => {}, backend: nodeBackend() };
  const plugin = definePlugin(spec, host);
  assert.equal(JSON.parse(plugin.describe().configSchema).additionalProperties, false);
  const result = plugin.run(stepInput(project, { paths: ['fixtures'] }));
  assert.match(result.findings[0].fingerprint, /^[0-9a-f]{16}:1$/);
  const denied = definePlugin(spec, { ...host, grants: () => ({ read: [], write: [] }) });
  assert.throws(() => denied.run(stepInput(project, { paths: ['fixtures'] })), (error) => {
    assert.equal(error.payload.tag, 'denied');
    return true;
  });
  assert.throws(() => plugin.run(stepInput(project, {}, { config: '{not json' })), (error) => error.payload.tag === 'invalid-config');
});
