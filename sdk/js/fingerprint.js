// The finding fingerprint, exactly as wit/plugin.wit (`finding.fingerprint`) states it
// and as the host and the Rust SDK compute it, so that one finding has one identity
// whatever the language of the plugin that reported it.
//
// - `<hash>:<occurrence>`, `hash` being 64-bit FNV-1a (16 lowercase hex digits) of
//   parts joined by one 0xff byte;
// - parts `line`, rule id, path, the line's text without Unicode whitespace, when the
//   finding's line (1 or more) of its file (at most 64 MiB) can be read; else `message`, rule id, path
//   ("" without a location), message;
// - `occurrence` counts from 1 among the findings sharing a hash, in (line, column)
//   order (a missing one is 0), ties in report order.

const UTF8 = new TextEncoder();

/** A longer file is not read for its line: the message fallback (the contract's bound). */
export const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

/**
 * 64-bit FNV-1a of the UTF-8 bytes of `parts`, joined by 0xff, as 16 hex digits.
 * Computed on two 32-bit halves (exact in doubles), not BigInt: it is faster in
 * every engine and needs nothing beyond ES2015.
 * @param {string[]} parts
 * @returns {string}
 */
export function fnv1a(parts) {
  // Offset basis 0xcbf29ce484222325.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  const mix = (byte) => {
    lo = (lo ^ byte) >>> 0;
    // (hi:lo) * 0x100000001b3 mod 2^64 = (hi:lo) * 0x1b3 + (lo << 40).
    const low = lo * 0x1b3;
    const carry = Math.floor(low / 0x100000000);
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = low >>> 0;
  };
  parts.forEach((part, index) => {
    if (index > 0) mix(0xff);
    for (const byte of UTF8.encode(part)) mix(byte);
  });
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/**
 * Unicode's White_Space property, listed (the set Rust's `char::is_whitespace` uses).
 * Not `\s`, which has U+FEFF and lacks U+0085; not `\p{White_Space}`, which the
 * SpiderMonkey of componentize-js (built without Unicode property data) rejects.
 */
const WHITE_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;

/**
 * A source line as it enters the hash: every Unicode White_Space character removed.
 * @param {string} line
 */
export function normalizeLine(line) {
  return line.replace(WHITE_SPACE, '');
}

/** The hash of a finding whose line reads `lineText`. */
export function lineHash(ruleId, path, lineText) {
  return fnv1a(['line', ruleId, path, normalizeLine(lineText)]);
}

/** The hash of a finding whose line is unknown. `path` is "" without a location. */
export function messageHash(ruleId, path, message) {
  return fnv1a(['message', ruleId, path ?? '', message]);
}

/**
 * Text of a file's bytes as the fingerprint reads it: UTF-8, each invalid sequence
 * replaced by U+FFFD (the WHATWG decoder replaces exactly as Rust's
 * `from_utf8_lossy`), a leading byte order mark kept, split at `\n`, a trailing `\r`
 * dropped from each line.
 * @param {Uint8Array} bytes
 * @returns {string[]}
 */
export function splitLines(bytes) {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  return text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/**
 * Give every finding whose `fingerprint` is empty its fingerprint, in place.
 * `readFile(path)` returns a file's bytes (`path` as the finding gives it), or
 * `undefined` when it cannot be read; each file is read at most once, and one over
 * `MAX_SOURCE_BYTES` counts as unreadable.
 * @template {{ ruleId: string, message: string, location?: any, fingerprint?: string }} F
 * @param {F[]} findings
 * @param {(path: string) => Uint8Array | undefined} readFile
 * @returns {F[]}
 */
export function assignFingerprints(findings, readFile) {
  const files = new Map();
  const lineOf = (path, line) => {
    if (!files.has(path)) {
      let lines;
      try {
        const bytes = readFile(path);
        lines = bytes === undefined || bytes.length > MAX_SOURCE_BYTES ? undefined : splitLines(bytes);
      } catch {
        lines = undefined;
      }
      files.set(path, lines);
    }
    return files.get(path)?.[line - 1];
  };
  const pending = [];
  findings.forEach((finding, index) => {
    if (finding.fingerprint) return;
    const location = finding.location ?? undefined;
    const line = location?.line ?? 0;
    const column = location?.column ?? 0;
    const text = location && line >= 1 ? lineOf(location.path, line) : undefined;
    const hash =
      text !== undefined
        ? lineHash(finding.ruleId, location.path, text)
        : messageHash(finding.ruleId, location?.path ?? '', finding.message);
    pending.push({ index, hash, line, column });
  });
  // Array.prototype.sort is stable (ES2019): ties keep report order.
  pending.sort((a, b) => a.line - b.line || a.column - b.column);
  const seen = new Map();
  for (const { index, hash } of pending) {
    const count = (seen.get(hash) ?? 0) + 1;
    seen.set(hash, count);
    findings[index].fingerprint = `${hash}:${count}`;
  }
  return findings;
}
