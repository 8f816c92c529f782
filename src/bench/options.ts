// What every `red bench <name>` takes (the CLI parses it; each bench module's `run` receives it).
export interface BenchOptions {
  quick: boolean;
  backend?: string;
  /** fp32 or bf16 (benches that take it). */
  precision?: string;
  /** engine bench: native (default) or torch (the PyTorch engine's step beside the native one). */
  engine?: string;
}
