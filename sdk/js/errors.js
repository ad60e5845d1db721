// Errors a plugin throws, and how each becomes the contract's `run-error`.
//
// - `InvalidConfig` → `invalid-config`: the `with` table makes no sense;
// - `Denied` → `denied`: a path (or other access) the step was not granted; the
//   message names the grant to add;
// - a `FileError` (files.js) → `failed`, with its message;
// - anything else → `failed`, with `Name: message` (`TypeError: x is undefined`).

/** The step's `with` table makes no sense, even though it matched the schema. */
export class InvalidConfig extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidConfig';
  }
}

/** The step needs access it was not granted; `message` names the grant to add. */
export class Denied extends Error {
  constructor(message) {
    super(message);
    this.name = 'Denied';
  }
}

/**
 * The `run-error` value (`{ tag, val }`, as componentize-js passes variants) for a
 * thrown value.
 * @param {unknown} error
 * @returns {{ tag: 'invalid-config' | 'denied' | 'failed', val: string }}
 */
export function toRunError(error) {
  if (error instanceof InvalidConfig) return { tag: 'invalid-config', val: error.message };
  if (error instanceof Denied) return { tag: 'denied', val: error.message };
  if (isExpected(error)) return { tag: 'failed', val: error.message };
  return { tag: 'failed', val: describeError(error) };
}

/**
 * An error the plugin means, whose message says it all (`FileError`: "cannot read
 * `x`: no such file or folder"), as opposed to a bug (`TypeError`), which is shown
 * with its name and stack.
 */
export function isExpected(error) {
  return error instanceof InvalidConfig || error instanceof Denied || error?.name === 'FileError';
}

/**
 * One line saying what went wrong: `Name: message` for an Error (as Python's
 * `ValueError: boom`), the value itself otherwise.
 * @param {unknown} error
 */
export function describeError(error) {
  if (error instanceof Error) {
    const name = error.name || 'Error';
    return error.message ? `${name}: ${error.message}` : name;
  }
  return `uncaught value: ${String(error)}`;
}
