// "did you mean" for a key the schema does not know: the keys the schema takes at that
// place (every branch of a union: a provider's keys are those of every kind), and the one
// closest to what was written.
import type { z } from 'zod';

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType; element?: z.ZodType; options?: z.ZodType[] };

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The keys of every object the schema can have at `path` (array indexes step into elements). */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const found = new Set<string>();
  const visit = (s: z.ZodType, rest: readonly PropertyKey[], depth: number): void => {
    if (depth > 64) return;
    const def = defOf(s);
    switch (def.type) {
      case 'object':
        if (rest.length === 0) for (const k of Object.keys(def.shape ?? {})) found.add(k);
        else if (typeof rest[0] === 'string' && def.shape?.[rest[0]]) visit(def.shape[rest[0]]!, rest.slice(1), depth + 1);
        return;
      case 'array':
        if (typeof rest[0] === 'number' && def.element) visit(def.element, rest.slice(1), depth + 1);
        return;
      case 'union':
        for (const o of def.options ?? []) visit(o, rest, depth + 1);
        return;
      case 'pipe':
        if (def.in) visit(def.in, rest, depth + 1);
        if (def.out) visit(def.out, rest, depth + 1);
        return;
      default:
        if (def.innerType) visit(def.innerType, rest, depth + 1);
    }
  };
  visit(schema, path, 0);
  return [...found];
}

/** The known key closest to `typed`, when close enough to be a slip (or the same but for case). */
export function closest(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === typed.toLowerCase() ? 0 : distance(typed.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(typed.length / 3)) ? best : undefined;
}

/** Levenshtein distance with adjacent transpositions (a swapped pair is one slip). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
