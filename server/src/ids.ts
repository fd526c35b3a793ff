import { randomFillSync } from "node:crypto";
import { monotonicFactory } from "ulid";

/**
 * A ULID generator, monotonic within a millisecond, whose randomness comes from a buffer of
 * cryptographic random bytes refilled 4 KB at a time. The ulid package's default asks the OS
 * for one byte per character (16 calls an id): 14 µs an id, a tenth of a start task's cost.
 */
export function ulidFactory(): () => string {
  const bytes = new Uint8Array(4096);
  let next = bytes.length;
  const ulid = monotonicFactory(() => {
    if (next === bytes.length) {
      randomFillSync(bytes);
      next = 0;
    }
    return bytes[next++]! / 256;
  });
  return () => ulid();
}
