// `{{name}}`: finds the lines matching a pattern in the files under `paths`, one
// finding per match (rule `{{name}}/match`). Plain JavaScript over the helper's
// `Files`, so that `node --test` runs it natively (src/scan.test.js); src/plugin.js
// makes it the component's `plugin` export.

import { InvalidConfig, finding, location, report } from '../sluice/index.js';

/** The step's `with` table: JSON Schema (draft 2020-12), closed, with an example. */
export const configSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Config',
  description: 'The step\'s `with` table.',
  type: 'object',
  properties: {
    paths: {
      description: "Files or folders to scan, relative to the pipeline's folder.",
      type: 'array',
      items: { type: 'string' },
      default: ['.'],
    },
    pattern: {
      description: 'The text to look for: a literal, not a regular expression.',
      type: 'string',
      minLength: 1,
      default: 'TODO',
    },
  },
  additionalProperties: false,
  examples: [{ paths: ['.'], pattern: 'TODO' }],
};

/**
 * The plugin, as `definePlugin` takes it.
 * @type {import('../sluice/index.js').PluginSpec<{ paths?: string[], pattern?: string }>}
 */
export const spec = {
  name: '{{name}}',
  version: '0.1.0',
  summary: 'Finds the lines matching a pattern in the files under `paths`.',
  configSchema,
  capabilities: ['read-files'],
  run: (config, { files }) => scan(config, files),
};

/**
 * Scan `config.paths` for `config.pattern`. A path outside the step's grants throws
 * `Denied` (from `files`), one that does not exist `FileError`.
 * @param {{ paths?: string[], pattern?: string }} config
 * @param {import('../sluice/index.js').Files} files
 */
export function scan(config, files) {
  const paths = config.paths ?? ['.'];
  const pattern = config.pattern ?? 'TODO';
  if (pattern === '') throw new InvalidConfig('`pattern` is empty: give the text to look for');
  const scanned = paths.flatMap((path) => files.walk(path));
  const findings = [];
  for (const path of scanned) {
    for (const { line, column } of matches(files.readText(path), pattern)) {
      findings.push(
        finding({
          ruleId: '{{name}}/match',
          severity: 'info',
          message: `\`${pattern}\` found`,
          location: location(path, { line, column }),
        }),
      );
    }
  }
  const inFiles = plural(scanned.length, 'file', 'files');
  return report({
    status: findings.length ? 'warned' : 'passed',
    summary: findings.length
      ? `${plural(findings.length, 'match', 'matches')} of \`${pattern}\` in ${inFiles}`
      : `no \`${pattern}\` in ${inFiles}`,
    findings,
    outputs: { matches: findings.length },
  });
}

/**
 * `{ line, column }` of every non-overlapping occurrence of `pattern` in `text`, both
 * 1-based, the column in code points. Lines end at `\n`; a trailing `\r` is dropped.
 * @param {string} text
 * @param {string} pattern
 */
export function* matches(text, pattern) {
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].endsWith('\r') ? lines[index].slice(0, -1) : lines[index];
    for (let at = line.indexOf(pattern); at !== -1; at = line.indexOf(pattern, at + pattern.length)) {
      yield { line: index + 1, column: [...line.slice(0, at)].length + 1 };
    }
  }
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}
