// Types of the Sluice helper for JavaScript plugins (index.js). The contract's own
// types (`StepInput`, `Report`, ...) are generated from wit/ by ./build.sh into
// types/ (`jco guest-types`); the shapes below are what the helper takes and gives.

export type Status = 'passed' | 'warned' | 'skipped' | 'failed';
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export type Capability = 'read-files' | 'write-files' | 'exec' | 'network' | 'env';
export type Pairs = Record<string, string | number | boolean> | Array<[string, string]>;

export interface Location {
  path: string;
  line?: number;
  column?: number;
  endLine?: number;
  endColumn?: number;
}

export interface Finding {
  ruleId: string;
  severity: Severity;
  message: string;
  location?: Location;
  /** Empty: filled in with the contract's algorithm when the plugin returns. */
  fingerprint: string;
  securitySeverity?: number;
  helpUri?: string;
  properties: Array<[string, string]>;
}

export interface Metric {
  name: string;
  value: number;
  unit: string;
  tags: Array<[string, string]>;
}

export interface TestCase {
  suite: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped' | 'flaky';
  durationMs: bigint;
  message?: string;
  output?: string;
  flakyAttempts: Array<{ message: string; output: string; durationMs: bigint }>;
}

export interface ArtifactFile {
  path: string;
  mediaType: string;
  name?: string;
  version?: string;
}

export interface DataPoint {
  name: string;
  positive: boolean;
  timestampMs: bigint;
  detail: string;
}

export interface Report {
  status: Status;
  summary: string;
  findings: Finding[];
  testCases: TestCase[];
  metrics: Metric[];
  dataPoints: DataPoint[];
  artifacts: ArtifactFile[];
  outputs: Array<[string, string]>;
}

export interface ReportInit {
  /** Default `passed`. */
  status?: Status;
  summary?: string;
  findings?: Finding[];
  testCases?: TestCase[];
  metrics?: Metric[];
  dataPoints?: DataPoint[];
  artifacts?: ArtifactFile[];
  outputs?: Pairs;
}

export interface FindingInit {
  ruleId: string;
  /** Default `medium`. */
  severity?: Severity;
  message?: string;
  location?: Location;
  fingerprint?: string;
  securitySeverity?: number;
  helpUri?: string;
  properties?: Pairs;
}

export interface TestCaseInit {
  suite?: string;
  name: string;
  status?: TestCase['status'];
  durationMs?: number;
  message?: string;
  output?: string;
  flakyAttempts?: TestCase['flakyAttempts'];
}

export function report(init?: ReportInit): Report;
export function finding(init: FindingInit): Finding;
export function location(
  path: string,
  at?: { line?: number; column?: number; endLine?: number; endColumn?: number },
): Location;
export function metric(name: string, value: number, unit?: string, tags?: Pairs): Metric;
export function testCase(init: TestCaseInit): TestCase;
export function artifact(path: string, mediaType: string, deliverable?: { name?: string; version?: string }): ArtifactFile;
/** The worse of two statuses: passed < skipped < warned < failed. */
export function worse(a: Status, b: Status): Status;

/** Thrown: becomes `run-error::invalid-config`. */
export class InvalidConfig extends Error {}
/** Thrown: becomes `run-error::denied`; the message names the grant to add. */
export class Denied extends Error {}
/** A file operation failed (not for a missing grant); `code` is WASI's error code. */
export class FileError extends Error {
  path: string;
  code: string;
}
export type RunError =
  | { tag: 'invalid-config'; val: string }
  | { tag: 'denied'; val: string }
  | { tag: 'failed'; val: string };
export function toRunError(error: unknown): RunError;
/** Whether `error` is one the plugin means (InvalidConfig, Denied, FileError): no stack shown. */
export function isExpected(error: unknown): boolean;
/** `Name: message` for an Error. */
export function describeError(error: unknown): string;

export interface Granted {
  read: string[];
  write: string[];
  exec?: string[];
  net?: string[];
  env?: string[];
  secrets?: string[];
  targets?: string[];
}

export interface Backend {
  readFile(absolute: string): Uint8Array;
  readDir(absolute: string): Array<{ name: string; kind: 'file' | 'directory' | 'other' }>;
  kind(absolute: string): 'file' | 'directory' | 'other' | undefined;
}

/** The step's files: paths resolved against the workdir and checked against the grants. */
export class Files {
  constructor(options: { workdir: string; granted: Granted; backend: Backend });
  readonly workdir: string;
  resolve(path: string): string;
  display(path: string): string;
  check(path: string, access?: 'read' | 'write'): string;
  read(path: string): Uint8Array;
  readText(path: string): string;
  kind(path: string): 'file' | 'directory' | 'other' | undefined;
  list(path: string): Array<{ name: string; kind: 'file' | 'directory' | 'other' }>;
  walk(path: string, options?: { skip?: (name: string) => boolean }): string[];
  tryRead(path: string): Uint8Array | undefined;
}
export function wasiBackend(getDirectories: () => Array<[unknown, string]>): Backend;

export interface Log {
  trace(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface Context {
  /** The step input as the host gave it (`config` still JSON text). */
  input: { workdir: string; config: string; [field: string]: unknown };
  workdir: string;
  granted: Granted;
  files: Files;
  log: Log;
}

export interface PluginSpec<Config = any> {
  name: string;
  version: string;
  summary: string;
  /** JSON Schema (draft 2020-12) of the `with` table: an object or its JSON text. */
  configSchema: object | string;
  /** Default `['read-files']`. */
  capabilities?: Capability[];
  run(config: Config, context: Context): Report | ReportInit;
}

export interface Host {
  /** `sluice:plugin/grants` `current`. */
  grants?: () => Granted;
  /** `sluice:plugin/log` `write`. */
  log?: (level: string, message: string, fields: Array<[string, string]>) => void;
  /** `wasi:filesystem/preopens` `getDirectories`. */
  preopens?: () => Array<[unknown, string]>;
  /** Files another way (node.js's `nodeBackend` in native tests). */
  backend?: Backend;
}

export function definePlugin<Config>(
  spec: PluginSpec<Config>,
  host: Host,
): { describe(): object; run(input: object): Report };

export function assignFingerprints<F extends { ruleId: string; message: string; location?: Location; fingerprint?: string }>(
  findings: F[],
  readFile: (path: string) => Uint8Array | undefined,
): F[];
export function fnv1a(parts: string[]): string;
export function normalizeLine(line: string): string;
export function lineHash(ruleId: string, path: string, lineText: string): string;
export function messageHash(ruleId: string, path: string | undefined, message: string): string;
export function resolvePath(workdir: string, path: string): string;
export function isInside(path: string, folder: string): boolean;
export function relativeTo(workdir: string, path: string): string;
export function checkGranted(granted: Granted, absolute: string, access: 'read' | 'write', shown: string): string;
export function compareNames(a: string, b: string): number;
