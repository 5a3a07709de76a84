// Counts hostile inputs tried and how many got through, and prints both from each test
// file (issue 8's closing number: the target for "got through" is zero).
import type { Test } from 'tap';

export class Tally {
  tried = 0;
  readonly through: string[] = [];

  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }

  /** `held` is true when Keyhole refused or neutralised the input. */
  record(input: string, held: boolean): boolean {
    this.tried++;
    if (!held) this.through.push(input);
    return held;
  }

  report(t: Test): void {
    t.comment(`hostile inputs [${this.name}]: tried ${this.tried}, got through ${this.through.length}`);
    t.same(this.through, [], `no hostile input got through (${this.tried} tried)`);
  }
}
