// Reading the step's files. A JavaScript component has no `fs` module: files are
// reached through `wasi:filesystem`, one preopened folder per granted path, mounted at
// the same absolute path as on the host. `Files` resolves a path against the
// pipeline's folder, checks it against the step's grants (a path outside every grant
// is a `Denied` naming the grant to add, not a bare "no such file"), and reads through
// a backend: `wasiBackend` in the component, `nodeBackend` (node.js) in native tests.

import { Denied } from './errors.js';
import { checkGranted, compareNames, isInside, relativeTo, resolvePath } from './paths.js';

/** A file operation failed for a reason other than a missing grant. */
export class FileError extends Error {
  /**
   * @param {string} path as the plugin gave it
   * @param {string} code `no-entry`, `not-directory`, `access`... (WASI's error-code names)
   */
  constructor(path, code) {
    super(`cannot read \`${path}\`: ${FILE_ERROR_TEXT[code] ?? code}`);
    this.name = 'FileError';
    this.path = path;
    this.code = code;
  }
}

const FILE_ERROR_TEXT = {
  'no-entry': 'no such file or folder',
  'not-directory': 'not a folder',
  'is-directory': 'is a folder',
  access: 'permission denied',
  'not-permitted': 'not permitted',
  'bad-descriptor': 'not reachable (no grant covers it)',
};

/**
 * The step's files, as one plugin run sees them.
 */
export class Files {
  /**
   * @param {{ workdir: string, granted: { read: string[], write: string[] }, backend: Backend }} options
   */
  constructor({ workdir, granted, backend }) {
    this.workdir = resolvePath('/', workdir);
    this.granted = granted;
    this.backend = backend;
  }

  /** `path` made absolute against the pipeline's folder. */
  resolve(path) {
    return resolvePath(this.workdir, path);
  }

  /** `path` as findings show it: relative to the pipeline's folder when inside it. */
  display(path) {
    return relativeTo(this.workdir, this.resolve(path));
  }

  /** Throws `Denied` naming the grant to add unless `path` may be accessed. */
  check(path, access = 'read') {
    const absolute = this.resolve(path);
    checkGranted(this.granted, absolute, access, path);
    return absolute;
  }

  /** The bytes of file `path`. */
  read(path) {
    const absolute = this.check(path);
    return this.#attempt(path, () => this.backend.readFile(absolute));
  }

  /** The text of file `path` (UTF-8, invalid bytes replaced). */
  readText(path) {
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.read(path));
  }

  /** `'file'`, `'directory'`, `'other'`, or `undefined` when `path` does not exist. */
  kind(path) {
    const absolute = this.check(path);
    return this.#attempt(path, () => this.backend.kind(absolute));
  }

  /** The entries of folder `path`, in byte order of their names: `{ name, kind }`. */
  list(path) {
    const absolute = this.check(path);
    return this.#attempt(path, () => this.backend.readDir(absolute)).sort((a, b) => compareNames(a.name, b.name));
  }

  /**
   * Every file under `path` (itself, when it is a file), as display paths, entries
   * in byte order of their names, folders entered where they sort. Entries for which
   * `skip(name)` is true (by default, names starting with `.`) are left out.
   * @param {string} path
   * @param {{ skip?: (name: string) => boolean }} [options]
   * @returns {string[]}
   */
  walk(path, { skip = (name) => name.startsWith('.') } = {}) {
    const kind = this.kind(path);
    if (kind === undefined) throw new FileError(path, 'no-entry');
    if (kind === 'file') return [this.display(path)];
    if (kind !== 'directory') return [];
    const files = [];
    const visit = (folder) => {
      for (const entry of this.list(folder)) {
        if (skip(entry.name)) continue;
        const child = `${folder}/${entry.name}`;
        if (entry.kind === 'directory') visit(child);
        else if (entry.kind === 'file') files.push(this.display(child));
      }
    };
    visit(this.resolve(path));
    return files;
  }

  /** The bytes of `path`, or `undefined` when it cannot be read (for fingerprints). */
  tryRead(path) {
    try {
      return this.read(path);
    } catch {
      return undefined;
    }
  }

  #attempt(path, operation) {
    try {
      return operation();
    } catch (error) {
      if (error instanceof Denied || error instanceof FileError) throw error;
      const code = errorCode(error);
      if (code === undefined) throw error;
      throw new FileError(path, code);
    }
  }
}

/** The WASI error code a failed `wasi:filesystem` call threw, if it is one. */
function errorCode(error) {
  const payload = error?.payload ?? error;
  return typeof payload === 'string' ? payload : undefined;
}

/**
 * @typedef {object} Backend
 * @property {(absolute: string) => Uint8Array} readFile
 * @property {(absolute: string) => Array<{ name: string, kind: string }>} readDir
 * @property {(absolute: string) => 'file' | 'directory' | 'other' | undefined} kind
 */

const CHUNK = 1n << 16n;

/**
 * Files through `wasi:filesystem`: `getDirectories` is `wasi:filesystem/preopens`'s
 * (`[descriptor, path]` pairs).
 * @param {() => Array<[any, string]>} getDirectories
 * @returns {Backend}
 */
export function wasiBackend(getDirectories) {
  let preopens;
  const locate = (absolute) => {
    preopens ??= getDirectories()
      .map(([descriptor, path]) => ({ descriptor, path: resolvePath('/', path) }))
      .sort((a, b) => b.path.length - a.path.length);
    const preopen = preopens.find(({ path }) => isInside(absolute, path));
    // A path no preopen covers does not exist for the plugin.
    if (preopen === undefined) throw 'bad-descriptor';
    const rest = absolute === preopen.path ? '' : absolute.slice(preopen.path === '/' ? 1 : preopen.path.length + 1);
    return { root: preopen.descriptor, rest };
  };
  const open = (absolute, openFlags) => {
    const { root, rest } = locate(absolute);
    if (rest === '') return { descriptor: root, owned: false };
    return { descriptor: root.openAt({ symlinkFollow: true }, rest, openFlags, { read: true }), owned: true };
  };
  const close = ({ descriptor, owned }) => {
    if (owned) descriptor[Symbol.dispose]?.();
  };
  const kindOf = (type) => (type === 'regular-file' ? 'file' : type === 'directory' ? 'directory' : 'other');
  return {
    readFile(absolute) {
      const handle = open(absolute, {});
      try {
        const chunks = [];
        let offset = 0n;
        for (;;) {
          const [bytes, end] = handle.descriptor.read(CHUNK, offset);
          chunks.push(bytes);
          offset += BigInt(bytes.length);
          if (end || bytes.length === 0) break;
        }
        const all = new Uint8Array(Number(offset));
        let at = 0;
        for (const chunk of chunks) {
          all.set(chunk, at);
          at += chunk.length;
        }
        return all;
      } finally {
        close(handle);
      }
    },
    readDir(absolute) {
      const handle = open(absolute, { directory: true });
      try {
        const stream = handle.descriptor.readDirectory();
        const entries = [];
        for (let entry = stream.readDirectoryEntry(); entry; entry = stream.readDirectoryEntry()) {
          entries.push({ name: entry.name, kind: kindOf(entry.type) });
        }
        stream[Symbol.dispose]?.();
        return entries;
      } finally {
        close(handle);
      }
    },
    kind(absolute) {
      const { root, rest } = locate(absolute);
      try {
        const stat = rest === '' ? root.stat() : root.statAt({ symlinkFollow: true }, rest);
        return kindOf(stat.type);
      } catch (error) {
        if (errorCode(error) === 'no-entry') return undefined;
        throw error;
      }
    },
  };
}
