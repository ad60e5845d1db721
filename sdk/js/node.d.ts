// Types of node.js: native test support for plugins.
import type { Backend, Files } from './index.js';

export function nodeBackend(): Backend;
export function nodeFiles(workdir: string, granted?: { read?: string[]; write?: string[] }): Files;
export function stepInput(
  workdir: string,
  config?: object,
  fields?: Record<string, unknown>,
): { workdir: string; config: string; [field: string]: unknown };
