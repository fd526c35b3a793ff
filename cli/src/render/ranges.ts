/**
 * Task ids written short: `0-26`, `0-3,7,9-12`, and an evenly spaced run in cron's step
 * notation, `201-599/2` (201, 203, … 599), which is what the join after a rolling update's
 * lanes waits for: each lane's last task, every other id.
 */

/**
 * Runs this long or longer are written as a range: `0,1,2` reads as easily as `0-2` (and a
 * 3-node plan's join stays as it always was), `1,3,5` better than `1-5/2`.
 */
const MIN_RUN = 4;

/**
 * The ids as ranges, in increasing order, each id once; `-` when there are none. Linear in
 * the number of ids when they come sorted (as a plan's prerequisites do), n log n otherwise.
 *
 * Worked example: [0, 1, 2, 3, 7, 9, 10, 11, 12] → `0-3,7,9-12`: at 0 the run of step 1 is
 * 0..3 (4 ids); at 7 the run of step 2 is 7, 9 (too short), so 7 stands alone; at 9 the run
 * of step 1 is 9..12. [0, 1, 2] stays `0,1,2`; [201, 203, …, 599] (200 ids) is `201-599/2`.
 */
export function idRangesText(ids: readonly number[]): string {
  if (ids.length === 0) return "-";
  const sorted = uniqueSorted(ids);
  const parts: string[] = [];
  let start = 0;
  while (start < sorted.length) {
    const first = sorted[start]!;
    if (start === sorted.length - 1) {
      parts.push(String(first));
      break;
    }
    const step = sorted[start + 1]! - first;
    let end = start + 1;
    while (end + 1 < sorted.length && sorted[end + 1]! - sorted[end]! === step) end++;
    if (end - start + 1 >= MIN_RUN) {
      parts.push(step === 1 ? `${first}-${sorted[end]}` : `${first}-${sorted[end]}/${step}`);
      start = end + 1;
    } else {
      parts.push(String(first));
      start++;
    }
  }
  return parts.join(",");
}

/** The ids in increasing order without repeats; the same array when it already is. */
function uniqueSorted(ids: readonly number[]): readonly number[] {
  let ordered = true;
  for (let i = 1; i < ids.length && ordered; i++) ordered = ids[i - 1]! < ids[i]!;
  if (ordered) return ids;
  const sorted = [...ids].sort((a, b) => a - b);
  return sorted.filter((id, i) => i === 0 || id !== sorted[i - 1]);
}

/**
 * `idRangesText` cut to at most `max` characters for a table's cell, at a comma, saying how
 * many ids there are in all: `1,4,9,16,25,…(40 ids)`. The whole list is in `-o json`.
 */
export function idRangesCell(ids: readonly number[], max: number): string {
  const text = idRangesText(ids);
  if (text.length <= max) return text;
  const suffix = `…(${uniqueSorted(ids).length} ids)`;
  const cut = text.lastIndexOf(",", max - suffix.length);
  return `${cut > 0 ? text.slice(0, cut + 1) : ""}${suffix}`;
}
