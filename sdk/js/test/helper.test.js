// The helper's builders, paths, grant checks and error mapping, natively.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  Denied,
  FileError,
  InvalidConfig,
  compareNames,
  definePlugin,
  finding,
  location,
  report,
  resolvePath,
  toRunError,
  worse,
} from '../index.js';
import { nodeBackend, nodeFiles, stepInput } from '../node.js';

test('builders fill in the contract defaults', () => {
  assert.deepEqual(report(), {
    status: 'passed',
    summary: '',
    findings: [],
    testCases: [],
    metrics: [],
    dataPoints: [],
    artifacts: [],
    outputs: [],
  });
  assert.deepEqual(finding({ ruleId: 'r', message: 'm', location: location('a.txt', { line: 3 }), properties: { n: 1 } }), {
    ruleId: 'r',
    severity: 'medium',
    message: 'm',
    location: { path: 'a.txt', line: 3, column: undefined, endLine: undefined, endColumn: undefined },
    fingerprint: '',
    securitySeverity: undefined,
    helpUri: undefined,
    properties: [['n', '1']],
  });
  assert.throws(() => report({ status: 'ok' }), /status must be one of/);
  assert.throws(() => finding({ message: 'no rule' }), /ruleId/);
  assert.equal(worse('passed', 'warned'), 'warned');
  assert.equal(worse('failed', 'skipped'), 'failed');
});

test('paths resolve against the workdir', () => {
  assert.equal(resolvePath('/w/p', 'src/../lib/./a.js'), '/w/p/lib/a.js');
  assert.equal(resolvePath('/w/p', '/etc/x'), '/etc/x');
  assert.equal(resolvePath('/w/p', '.'), '/w/p');
  assert.equal(resolvePath('/', '../..'), '/');
});

test('names sort by code point, as UTF-8 bytes do', () => {
  const names = ['b', '\u{1F600}', '\uFF21', 'a', 'B'];
  assert.deepEqual(names.sort(compareNames), ['B', 'a', 'b', '\uFF21', '\u{1F600}']);
});

test('errors map to run-error', () => {
  assert.deepEqual(toRunError(new InvalidConfig('bad')), { tag: 'invalid-config', val: 'bad' });
  assert.deepEqual(toRunError(new Denied('add read')), { tag: 'denied', val: 'add read' });
  assert.deepEqual(toRunError(new TypeError('x is undefined')), { tag: 'failed', val: 'TypeError: x is undefined' });
  assert.deepEqual(toRunError('a string'), { tag: 'failed', val: 'uncaught value: a string' });
  assert.deepEqual(toRunError(new FileError('x', 'no-entry')), { tag: 'failed', val: 'cannot read `x`: no such file or folder' });
});

test('files: denied outside the grants, walked in byte order without dot names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-js-'));
  try {
    mkdirSync(join(dir, 'src/b'), { recursive: true });
    mkdirSync(join(dir, 'src/.git'));
    mkdirSync(join(dir, 'secret'));
    for (const file of ['src/z.txt', 'src/a.txt', 'src/b/c.txt', 'src/.hidden', 'src/.git/x', 'secret/k']) {
      writeFileSync(join(dir, file), 'x');
    }
    const files = nodeFiles(dir, { read: [join(dir, 'src')] });
    assert.deepEqual(files.walk('src'), ['src/a.txt', 'src/b/c.txt', 'src/z.txt']);
    assert.throws(() => files.read('secret/k'), Denied);
    assert.throws(() => files.read('src/../secret/k'), /add `read = \["src\/..\/secret\/k"\]`/);
    assert.throws(() => files.read('src/missing'), (e) => e instanceof FileError && e.code === 'no-entry');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a thrown error is printed to stderr and returned as run-error::failed', (t) => {
  const lines = [];
  t.mock.method(console, 'error', (line) => lines.push(line));
  const plugin = definePlugin(
    {
      name: 'boom',
      version: '0.1.0',
      summary: 's',
      configSchema: { type: 'object', additionalProperties: false },
      run: () => {
        throw new RangeError('boom');
      },
    },
    { grants: () => ({ read: [], write: [] }), backend: nodeBackend() },
  );
  assert.throws(() => plugin.run(stepInput('/tmp')), (error) => {
    assert.deepEqual(error.payload, { tag: 'failed', val: 'RangeError: boom' });
    return true;
  });
  assert.equal(lines[0], 'RangeError: boom');
  assert.match(lines[1], /^    /);
});
