// Builders for the contract's records, with defaults, so that a plugin writes only
// what it knows: `finding({ ruleId, message })` is a whole `finding` record.
//
// The shapes are those componentize-js passes across the component boundary:
// camelCase fields, enums as their WIT names (`'warned'`, `'high'`), `option` as the
// value or `undefined`, tuples as arrays, variants as `{ tag, val }`.

const STATUSES = ['passed', 'warned', 'skipped', 'failed'];
const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];

/** `[[name, value], ...]` of strings from an object or a list of pairs. */
function pairs(values) {
  const entries = Array.isArray(values) ? values : Object.entries(values ?? {});
  return entries.map(([name, value]) => [String(name), String(value)]);
}

function oneOf(kind, allowed, value) {
  if (!allowed.includes(value)) {
    throw new TypeError(`${kind} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * A `report`. `status` defaults to `passed`; every list to empty.
 * @param {import('./index.js').ReportInit} [init]
 */
export function report(init = {}) {
  return {
    status: oneOf('status', STATUSES, init.status ?? 'passed'),
    summary: init.summary ?? '',
    findings: init.findings ?? [],
    testCases: init.testCases ?? [],
    metrics: init.metrics ?? [],
    dataPoints: init.dataPoints ?? [],
    artifacts: init.artifacts ?? [],
    outputs: pairs(init.outputs),
  };
}

/** The worse of two statuses: passed < skipped < warned < failed. */
export function worse(a, b) {
  const rank = { passed: 0, skipped: 1, warned: 2, failed: 3 };
  return rank[b] > rank[a] ? b : a;
}

/**
 * A `location`: a path relative to the pipeline's folder, 1-based lines and columns.
 * @param {string} path
 * @param {{ line?: number, column?: number, endLine?: number, endColumn?: number }} [at]
 */
export function location(path, at = {}) {
  return {
    path,
    line: at.line,
    column: at.column,
    endLine: at.endLine,
    endColumn: at.endColumn,
  };
}

/**
 * A `finding`. `severity` defaults to `medium`; `fingerprint` to empty, which the
 * helper (and the host) fill in with the contract's algorithm.
 * @param {import('./index.js').FindingInit} init
 */
export function finding(init) {
  if (!init?.ruleId) throw new TypeError('a finding needs a ruleId');
  return {
    ruleId: init.ruleId,
    severity: oneOf('severity', SEVERITIES, init.severity ?? 'medium'),
    message: init.message ?? '',
    location: init.location,
    fingerprint: init.fingerprint ?? '',
    securitySeverity: init.securitySeverity,
    helpUri: init.helpUri,
    properties: pairs(init.properties),
  };
}

/** A `metric`, e.g. `metric('todo.count', 3, 'count', { pattern: 'TODO' })`. */
export function metric(name, value, unit = '', tags = {}) {
  return { name, value: Number(value), unit, tags: pairs(tags) };
}

/**
 * A `test-case`. `status` defaults to `passed`, `durationMs` to 0.
 * @param {import('./index.js').TestCaseInit} init
 */
export function testCase(init) {
  return {
    suite: init.suite ?? '',
    name: init.name,
    status: oneOf('test status', ['passed', 'failed', 'skipped', 'flaky'], init.status ?? 'passed'),
    durationMs: BigInt(Math.round(init.durationMs ?? 0)),
    message: init.message,
    output: init.output,
    flakyAttempts: init.flakyAttempts ?? [],
  };
}

/** An `artifact-file` the step produced. */
export function artifact(path, mediaType, deliverable = {}) {
  return { path, mediaType, name: deliverable.name, version: deliverable.version };
}
