// `log.format: text`: the operational log as short lines for a person at a terminal,
//   2026-12-04T01:29:05.782Z INFO keyhole listening data=127.0.0.1:8443 workers=1
// pino still builds JSON (one code path, the same redaction); this stream rewrites each line
// on its way out. Audit lines never pass here: they keep their JSON (their hash chain is over
// those bytes) and go to the stream underneath (`json`), whatever the format.
import type { DestinationStream } from 'pino';

/** Fields every line has, shown in the line's head or not at all. */
const HEAD = new Set(['level', 'time', 'msg', 'service']);

export interface TextLines extends DestinationStream {
  /** the JSON stream underneath, for lines that must stay JSON (audit) */
  readonly json: DestinationStream;
}

type Flushable = DestinationStream & { flush?(cb?: (err?: Error) => void): void; flushSync?(): void };

export function textLines(json: Flushable): TextLines & Pick<Flushable, 'flush' | 'flushSync'> {
  return {
    json,
    write(line: string) {
      json.write(toText(line));
    },
    // logger.flush() and the exit path reach the stream that holds the bytes.
    flush(cb) {
      if (json.flush) json.flush(cb);
      else cb?.();
    },
    flushSync() {
      json.flushSync?.();
    },
  };
}

/** The stream audit lines go to: the JSON one under a text formatter, else the stream itself. */
export function jsonStreamOf(stream: unknown): unknown {
  return stream !== null && typeof stream === 'object' && 'json' in stream ? (stream as TextLines).json : stream;
}

export function toText(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line; // not ours to judge: passed on as written
  }
  const parts = [String(entry.time ?? ''), String(entry.level ?? '').toUpperCase(), String(entry.msg ?? '')];
  for (const [key, value] of Object.entries(entry)) {
    if (!HEAD.has(key) && value !== undefined) parts.push(`${key}=${textValue(value)}`);
  }
  return `${parts.join(' ')}\n`;
}

function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value !== null && typeof value === 'object' && 'address' in value && 'port' in value) return `${String(value.address)}:${String(value.port)}`;
  return JSON.stringify(value);
}
