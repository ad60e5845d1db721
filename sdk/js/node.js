// Native test support: the same `Files` over Node's `fs`, and a step input, so that a
// plugin's logic runs under `node --test` without building a component. Never
// imported by the component (a component has no `node:fs`).

import { readdirSync, readFileSync, statSync } from 'node:fs';

import { Files } from './files.js';

/** @returns {import('./files.js').Backend} */
export function nodeBackend() {
  const codes = { ENOENT: 'no-entry', ENOTDIR: 'not-directory', EISDIR: 'is-directory', EACCES: 'access' };
  const wrap = (operation) => {
    try {
      return operation();
    } catch (error) {
      const code = codes[error?.code];
      throw code === undefined ? error : code;
    }
  };
  const kindOf = (entry) => (entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : 'other');
  return {
    readFile: (absolute) => wrap(() => new Uint8Array(readFileSync(absolute))),
    readDir: (absolute) =>
      wrap(() => readdirSync(absolute, { withFileTypes: true }).map((entry) => ({ name: entry.name, kind: kindOf(entry) }))),
    kind(absolute) {
      try {
        return kindOf(statSync(absolute));
      } catch (error) {
        if (error?.code === 'ENOENT') return undefined;
        throw codes[error?.code] ?? error;
      }
    },
  };
}

/**
 * `Files` rooted at `workdir` on this machine, granted `read` (default: the workdir).
 * @param {string} workdir absolute
 * @param {{ read?: string[], write?: string[] }} [granted]
 */
export function nodeFiles(workdir, granted = {}) {
  return new Files({
    workdir,
    granted: { read: granted.read ?? [workdir], write: granted.write ?? [] },
    backend: nodeBackend(),
  });
}

/** A `step-input` for a native test: `config` is an object, the rest has defaults. */
export function stepInput(workdir, config = {}, fields = {}) {
  return {
    runId: 'test-run',
    pipeline: 'test',
    stage: 'test',
    step: 'test',
    config: JSON.stringify(config),
    artifact: undefined,
    outputs: [],
    workdir,
    attempt: 1,
    plugins: [],
    ...fields,
  };
}
