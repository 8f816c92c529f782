// A user-facing error: the CLI prints its message alone (no stack), since it already names
// the file, row or key at fault and what was expected.
export class RedError extends Error {
  override name = 'RedError';
}

export function fail(message: string): never {
  throw new RedError(message);
}
