// The Sluice helper for JavaScript plugins (componentize-js): builders for reports,
// findings and locations; the contract's fingerprint; the step's files, resolved and
// checked against its grants; and errors mapped to `run-error`. Types: index.d.ts.

export { definePlugin } from './plugin.js';
export { artifact, finding, location, metric, report, testCase, worse } from './report.js';
export { Denied, InvalidConfig, describeError, isExpected, toRunError } from './errors.js';
export { FileError, Files, wasiBackend } from './files.js';
export { assignFingerprints, fnv1a, lineHash, messageHash, normalizeLine } from './fingerprint.js';
export { checkGranted, compareNames, isInside, relativeTo, resolvePath } from './paths.js';
