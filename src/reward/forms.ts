// The answer forms that take a rule of their own (issue 30), named as `red verify --explain` prints
// them. Listed in Math-Verify's order of priority: where the answer is found, how it is read, how
// it is compared. A verdict may pass through several; they are reported in the order they applied.

export type Form =
  /** Boxes joined into one set: fewer than 10 characters apart, or fewer than 70 holding "and",
   * "or", a comma or a semicolon (extraction, priority 50). */
  | 'several-boxes'
  /** A gold written as a worked solution: its answer is found as a response's is. */
  | 'worked-solution'
  /** A plain number outside math with a decimal comma, `2000,75` (the number target, priority 300). */
  | 'decimal-comma'
  /** `x = a = b \approx c`: the chain before `\approx`, or its right side after a bare name. */
  | 'approx-chain'
  /** A chain of `=` holding a macro no parser knows: its last side alone. */
  | 'unknown-macro-chain'
  /** `x \in S` read as S. */
  | 'membership'
  /** `{a, b}` without backslashes read as a set. */
  | 'brace-set'
  /** `a=3,b=1;a=5,b=1`: tuples separated by `;`. */
  | 'semicolon-tuples'
  /** `\pm a` matched against a two-element set or tuple. */
  | 'pm-set'
  /** A tuple against a set of the same items (in the tuple's order when the tuple is the gold). */
  | 'tuple-set'
  /** `\frac{AB}{CD} = v`, `a+b = v`: a side of names only labels the value on the other. */
  | 'labelled-side'
  /** A decimal against an exact rational, equal to the digits it was written with. */
  | 'rounded-decimal'
  /** Variables renamed to the gold's (the `strict: false` option). */
  | 'non-strict';

/** Records the forms one verify() passes through, each once, in order. */
export type NoteForm = (form: Form) => void;
