// `definePlugin`: a plugin's `describe` and `run` as the component exports them, with
// the chores every plugin shares done once:
// - the `with` table parsed (bad JSON is `invalid-config`);
// - a `Files` for the step (paths resolved against the pipeline's folder, checked
//   against the `grants` import);
// - the thrown error mapped to `run-error` (`InvalidConfig` → invalid-config,
//   `Denied` → denied, `FileError` → failed with its message, anything else → failed
//   with `Name: message`), its line (and a bug's stack) printed to stderr first so
//   that the step log has them;
// - fingerprints filled in with the contract's algorithm.
//
// The host's imports are passed in (`host`), never imported here, so that the same
// code runs natively under `node --test`.

import { InvalidConfig, describeError, isExpected, toRunError } from './errors.js';
import { Files, wasiBackend } from './files.js';
import { assignFingerprints } from './fingerprint.js';
import { report as buildReport } from './report.js';

/**
 * @param {import('./index.js').PluginSpec} spec
 * @param {import('./index.js').Host} host
 * @returns {{ describe(): object, run(input: object): object }} the `plugin` export
 */
export function definePlugin(spec, host) {
  for (const key of ['name', 'version', 'summary', 'configSchema', 'run']) {
    if (spec?.[key] === undefined) throw new TypeError(`definePlugin: the plugin has no \`${key}\``);
  }
  const log = logger(host.log);
  return {
    describe() {
      return reportingUncaught(() => ({
        name: spec.name,
        version: spec.version,
        summary: spec.summary,
        configSchema: typeof spec.configSchema === 'string' ? spec.configSchema : JSON.stringify(spec.configSchema),
        capabilities: spec.capabilities ?? ['read-files'],
      }));
    },
    run(input) {
      try {
        return runStep(spec, host, log, input);
      } catch (error) {
        const runError = toRunError(error);
        printError(error);
        // componentize-js returns a thrown value's `payload` as the `err` case.
        throw Object.assign(new Error(runError.val), { payload: runError });
      }
    },
  };
}

/**
 * Print `Name: message` (the line a trap summary picks up: the host takes the guest's
 * last error line from its stderr), then the stack, indented, into the step log.
 */
function printError(error) {
  console.error(describeError(error));
  if (isExpected(error)) return;
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack.trimEnd() : '';
  if (stack) console.error(stack.replace(/^/gm, '    '));
}

/** `describe` has no error case: an exception traps, after its line is printed. */
function reportingUncaught(operation) {
  try {
    return operation();
  } catch (error) {
    printError(error);
    throw error;
  }
}

function runStep(spec, host, log, input) {
  let config;
  try {
    config = input.config.trim() === '' ? {} : JSON.parse(input.config);
  } catch (error) {
    throw new InvalidConfig(`invalid \`with\` table: ${error.message}`);
  }
  const granted = host.grants?.() ?? { read: [], write: [] };
  const files = new Files({ workdir: input.workdir, granted, backend: host.backend ?? wasiBackend(host.preopens) });
  const result = spec.run(config, { input, workdir: input.workdir, granted, files, log });
  const report = buildReport(result);
  assignFingerprints(report.findings, (path) => files.tryRead(path));
  return report;
}

/** `log.info(message, fields)` and friends over the `log` import's `write`. */
function logger(write) {
  const at = (level) => (message, fields = {}) =>
    write?.(level, String(message), Object.entries(fields).map(([k, v]) => [k, String(v)]));
  return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
