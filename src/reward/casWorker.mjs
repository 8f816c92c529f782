// Entry of a CAS worker thread. A Worker started from a `.ts` file does not inherit the tsx loader
// that bin/red.js registered through tsx's API, so this plain module registers it, then loads the TS.
import { register } from 'tsx/esm/api';

register();
await import('./casWorker.ts');
