// Paths as a plugin sees them: WASI gives a guest no working directory, so a relative
// path in the configuration is resolved against the pipeline's folder
// (`step-input.workdir`) by the plugin itself; and a folder that no grant covers does
// not exist for the plugin, so the helper says which grant to add instead of letting
// the open fail with a bare "no such file".
//
// Pure string work on POSIX paths (the guest's paths are the host's, absolute, `/`).

import { Denied } from './errors.js';

/**
 * `path` made absolute against `workdir` and normalized (`.` and `..` resolved, no
 * trailing `/`). `..` never climbs above `/`.
 * @param {string} workdir absolute
 * @param {string} path absolute or relative
 */
export function resolvePath(workdir, path) {
  const joined = path.startsWith('/') ? path : `${workdir}/${path}`;
  const parts = [];
  for (const part of joined.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** Whether `path` is `folder` or inside it (both absolute and normalized). */
export function isInside(path, folder) {
  if (folder === '/') return true;
  return path === folder || path.startsWith(`${folder}/`);
}

/**
 * `path` (absolute) relative to `workdir` when inside it, for findings and messages;
 * the absolute path otherwise.
 */
export function relativeTo(workdir, path) {
  const base = resolvePath('/', workdir);
  if (path === base) return '.';
  return isInside(path, base) ? path.slice(base === '/' ? 1 : base.length + 1) : path;
}

/**
 * The grant covering absolute path `absolute` for `access` (`read` or `write`): the
 * granted folder, or a `Denied` error naming the grant to add.
 * @param {{ read: string[], write: string[] }} granted `grants.current()`
 * @param {string} absolute the path, absolute and normalized
 * @param {'read' | 'write'} access
 * @param {string} shown the path as the plugin was given it, for the message
 * @returns {string}
 */
export function checkGranted(granted, absolute, access, shown) {
  const folders = access === 'write' ? granted.write : [...granted.read, ...granted.write];
  const covering = folders
    .map((folder) => resolvePath('/', folder))
    .filter((folder) => isInside(absolute, folder))
    .sort((a, b) => b.length - a.length)[0];
  if (covering !== undefined) return covering;
  const verb = access === 'write' ? 'write' : 'read';
  throw new Denied(
    `cannot ${verb} \`${shown}\`: the step has no ${access} grant covering it; ` +
      `add \`${access} = ["${shown}"]\` to the step's grants`,
  );
}

/**
 * Compare two names by the bytes of their UTF-8 encoding (the order of code points),
 * as every template sorts folder entries; JavaScript's `<` compares UTF-16 units.
 */
export function compareNames(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
