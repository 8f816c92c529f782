// Body of a CAS worker thread: answers {id, gold, pred} with {id, equal, reason?}. Loading the
// compute engine takes a moment, so the thread says 'ready' once it can take work.
import { parentPort } from 'node:worker_threads';
import { CasComparer } from './cas.ts';

export interface CasRequest {
  id: number;
  gold: string;
  pred: string;
}
export type CasReply = { type: 'ready' } | { type: 'result'; id: number; equal: boolean; reason?: string };

const port = parentPort;
if (port) {
  const cas = new CasComparer();
  port.on('message', (req: CasRequest) => {
    let reply: CasReply;
    try {
      reply = { type: 'result', id: req.id, ...cas.compare(req.gold, req.pred) };
    } catch (err) {
      reply = { type: 'result', id: req.id, equal: false, reason: `error: ${err instanceof Error ? err.message : String(err)}` };
    }
    port.postMessage(reply);
  });
  port.postMessage({ type: 'ready' } satisfies CasReply);
}
