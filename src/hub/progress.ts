// Download progress: a cli-progress bar over the bytes of a snapshot on a terminal, one line per
// fetched file otherwise (logs stay readable), nothing when `quiet`.
export interface DownloadProgress {
  /** A file of `bytes` is about to be fetched. */
  file(name: string, bytes: number): void;
  /** Bytes of the current file on disk so far. */
  update(done: number): void;
  stop(): void;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export async function createDownloadProgress(
  label: string,
  totalBytes: number,
  stream: NodeJS.WriteStream = process.stderr,
): Promise<DownloadProgress> {
  if (!stream.isTTY) {
    return {
      file: (name, bytes) => stream.write(`${label}: fetching ${name} (${mb(bytes)})\n`),
      update() {},
      stop() {},
    };
  }
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    stream,
    format: `${label} [{bar}] {percentage}% | {done}/{all} | {name}`,
    barsize: 24,
    hideCursor: true,
  });
  let before = 0; // bytes of the files already finished
  let current = 0;
  let name = '';
  bar.start(Math.max(totalBytes, 1), 0, { done: mb(0), all: mb(totalBytes), name: '' });
  return {
    file(n, bytes) {
      before += current;
      current = 0;
      name = n;
      void bytes;
    },
    update(done) {
      current = done;
      bar.update(before + current, { done: mb(before + current), all: mb(totalBytes), name });
    },
    stop() {
      bar.stop();
    },
  };
}
