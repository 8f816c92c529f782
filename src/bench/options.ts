// What every `red bench <name>` takes (the CLI parses it; each bench module's `run` receives it).
export interface BenchOptions {
  quick: boolean;
  backend?: string;
  /** fp32 or bf16 (benches that take it). */
  precision?: string;
}
