// The component's entry point (build.sh gives it to componentize-js): the host's
// imports handed to the helper, and the `plugin` export. The imports exist only inside
// the component; everything testable lives in scan.js.

import { current } from 'sluice:plugin/grants@{{contract}}';
import { write } from 'sluice:plugin/log@{{contract}}';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

import { definePlugin } from '../sluice/index.js';
import { spec } from './scan.js';

export const plugin = definePlugin(spec, { grants: current, log: write, preopens: getDirectories });
