// Stop strings on decoded text, shared by the scheduler (where a sample ends and where its text is
// cut) and the SSE streams (how much text may go out before the stop check has seen what follows).
// vLLM's rules: a stop string counts only where it ends in the text the newest token added (so one
// that completed while min_tokens held the checks off stays in the text), the text is cut before
// it (after it with include_stop_str_in_output), and a stream holds back any tail that could still
// grow into a stop string.

/** The earliest stop string that ends after `before` characters of `text`, and where it starts. */
export function stopIn(text: string, before: number, stops: readonly string[]): { at: number; stop: string } | null {
  let best: { at: number; stop: string } | null = null;
  for (const stop of stops) {
    const at = text.indexOf(stop, Math.max(0, before - stop.length + 1));
    if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
  }
  return best;
}

/**
 * How much of `text` a stream may show: all of it but a tail that is the start of a stop string
 * (it may complete with the next token), or that ends in an incomplete UTF-8 sequence (U+FFFD
 * until its last byte arrives).
 */
export function streamableLength(text: string, stops: readonly string[]): number {
  let n = text.length;
  while (n > 0 && text[n - 1] === '\uFFFD') n--;
  const shown = text.slice(0, n);
  let held = 0;
  for (const stop of stops)
    for (let k = Math.min(stop.length - 1, n); k > held; k--)
      if (shown.endsWith(stop.slice(0, k))) {
        held = k;
        break;
      }
  return n - held;
}
