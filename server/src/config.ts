import { InvalidArgumentError } from "commander";
import { durationText, readDuration } from "@drover/shared";
import { CommandPolicy } from "./drivers/CommandPolicy.js";

/**
 * Reads a duration flag in the grammar the client shares (see @drover/shared's duration.ts):
 * `500ms`, `90s`, `1h30m`, `7d`.
 */
export function parseDuration(text: string): number {
  const reading = readDuration(text);
  if (reading.problem !== undefined) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a duration: ${reading.problem}`);
  return reading.milliseconds;
}

/** Parses a latency range `MIN..MAX` (each a duration), or a single duration for a fixed latency. */
export function parseLatencyRange(text: string): { min: number; max: number } {
  const [minText, maxText, ...rest] = text.split("..");
  if (rest.length > 0 || minText === undefined) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a range: write it like 500ms..2s`);
  const min = parseDuration(minText);
  const max = maxText === undefined ? min : parseDuration(maxText);
  if (max < min) throw new InvalidArgumentError(`${JSON.stringify(text)} is not a range: its maximum is below its minimum`);
  return { min, max };
}

/** A commander parser for an integer from `min` to `max`. */
export function integerIn(min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`${JSON.stringify(text)} must be an integer from ${min} to ${max}`);
    }
    return value;
  };
}

const BYTE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * A commander parser for a size in bytes from `min` to `max`: `10MiB`, `512KiB`, `1GiB`, or a
 * bare number of bytes. K, M, G and T are powers of 1024 with or without `i` and `B` (`10M`,
 * `10MB`), as Docker reads its log sizes.
 */
export function byteSizeIn(min: number, max: number) {
  return (text: string): number => {
    const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
    const value = match ? Math.round(Number(match[1]) * BYTE_UNITS[match[2]!.toLowerCase()]!) : Number.NaN;
    if (!match || (match[3] !== undefined && match[2] === "" && match[3].toLowerCase() !== "b")) {
      throw new InvalidArgumentError(`${JSON.stringify(text)} is not a size: write it like 10MiB, 512KiB or 1GiB`);
    }
    if (value < min || value > max) throw new InvalidArgumentError(`${JSON.stringify(text)} must be a size from ${formatBytes(min)} to ${formatBytes(max)}`);
    return value;
  };
}

/** A size in the largest binary unit that divides it: 1024 → "1KiB". */
function formatBytes(bytes: number): string {
  const units = ["TiB", "GiB", "MiB", "KiB"];
  for (const [i, unit] of units.entries()) {
    const size = 1024 ** (units.length - i);
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}

export function probability(text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} must be a probability from 0 to 1`);
  }
  return value;
}

/** Checks a listen address of the form host:port. */
export function listenAddress(text: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!match || Number(match[2]) > 65535) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a listen address: write it as host:port, like 127.0.0.1:8888`);
  }
  return text;
}

/** A commander parser for a duration from `min` to `max` milliseconds. */
export function durationIn(min: number, max: number) {
  return (text: string): number => {
    const value = parseDuration(text);
    if (value < min || value > max) {
      throw new InvalidArgumentError(`${JSON.stringify(text)} must be a duration from ${durationText(min)} to ${durationText(max)}`);
    }
    return value;
  };
}

/** Parses a port range `first..last`. */
export function portRange(text: string): { first: number; last: number } {
  const match = /^(\d{1,5})\.\.(\d{1,5})$/.exec(text.trim());
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1 || last > 65535 || last < first) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a port range: write it like 20000..20999, within 1..65535`);
  }
  return { first, last };
}

/** A commander parser for `--allow-commands`: absolute paths and globs, comma-separated. */
export function allowedCommands(text: string): CommandPolicy {
  try {
    return CommandPolicy.parse(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}
