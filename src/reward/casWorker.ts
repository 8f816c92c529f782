// Body of a CAS worker thread: answers {id, gold, pred} with {id, equal, reason?}. Loading the
// compute engine takes a moment, so the thread says 'ready' once it can take work.
import { parentPort } from 'node:worker_threads';
import { CasComparer } from './cas.ts';
import type { LeafMode } from './compare.ts';

export interface CasRequest {
  id: number;
  gold: string;
  pred: string;
  mode?: LeafMode;
  /** Rename the prediction's variables to the gold's (a non-strict comparison). */
  rename?: boolean;
}
export type CasReply =
  { type: 'ready' } | { type: 'result'; id: number; equal: boolean; reason?: string; renamed?: boolean };

const port = parentPort;
if (port) {
  const cas = new CasComparer();
  port.on('message', (req: CasRequest) => {
    let reply: CasReply;
    try {
      reply = { type: 'result', id: req.id, ...cas.compare(req.gold, req.pred, req.mode, req.rename) };
    } catch (err) {
      reply = {
        type: 'result',
        id: req.id,
        equal: false,
        reason: `error: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    port.postMessage(reply);
  });
  // A first comparison compiles the engine's parser and simplifier; done here, its cost is start-up
  // time rather than part of some answer's timeout budget.
  try {
    cas.compare('\\frac{x^2+2x+1}{2}', '\\frac{(x+1)^2}{2}+\\sqrt{4}-2');
  } catch {
    // A failed warm-up changes nothing; real comparisons report their own errors.
  }
  port.postMessage({ type: 'ready' } satisfies CasReply);
}
