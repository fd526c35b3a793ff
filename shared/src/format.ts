/**
 * Formats a duration in milliseconds the way a person reads it, rounded to what matters: 850ms,
 * 9.8s, 3m12s, 2h05m, 4d3h (for how long something took). A setting, which must read back
 * exactly, is written by durationText (duration.ts).
 */
export function formatDuration(milliseconds: number): string {
  const ms = Math.max(0, Math.round(milliseconds));
  if (ms < 1000) return `${ms}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const totalSeconds = Math.floor(seconds);
  const minutes = Math.floor(totalSeconds / 60);
  if (minutes < 60) return `${minutes}m${String(totalSeconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}

/** Formats an age the way kubectl does: 45s, 12m, 3h, 5d. */
export function formatAge(milliseconds: number): string {
  const seconds = Math.max(0, Math.floor(milliseconds / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** The longest part of a value an error message quotes. */
const QUOTED_LENGTH = 64;

/**
 * A value quoted for an error message: JSON-quoted, and cut short (saying how long it was)
 * when it is long, since a message that echoes a 100 KB field helps nobody and gRPC must
 * carry it in a header.
 */
export function quote(value: string): string {
  if (value.length <= QUOTED_LENGTH) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, QUOTED_LENGTH))}… (${value.length} characters)`;
}

/**
 * Formats thousandths of a core as cores, exactly (a reservation is whole millicores): 1 core,
 * 2.5 cores, 0.25 cores, 0.001 cores.
 */
export function formatCores(millicores: number): string {
  const cores = millicores / 1000;
  // toFixed(3) then Number: no float noise (0.1 + 0.2), no trailing zeros.
  return `${Number(cores.toFixed(3))} ${cores === 1 ? "core" : "cores"}`;
}

/** Formats a size in bytes with binary units: 512 B, 1.5 KiB, 64.0 MiB. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
