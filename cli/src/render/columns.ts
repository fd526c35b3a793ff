/**
 * Aligned columns in linear time, for tables too long for cli-table3: it lays out 10,000
 * rows in about 5 s and 30,000 in 28 s on this machine (its work grows faster than the
 * rows), where this takes milliseconds. It lays cells out as `table` in render.ts asks
 * cli-table3 to (no borders, three spaces between columns, cells padded on the right, a
 * cell of several lines making its row as tall), and a test checks that both give the same
 * text. One difference: every character counts as one column, so a row holding wide (East
 * Asian) characters is misaligned, which cli-table3 would measure right.
 */

const GAP = "   ";
// Colour codes take no room on a terminal.
const ANSI_CODE = /\x1b\[[0-9;]*m/g;

/** How many columns a line of a cell takes on a terminal. */
function visibleWidth(line: string): number {
  return line.includes("\x1b") ? line.replace(ANSI_CODE, "").length : line.length;
}

/** Pads a line of a cell on the right to `width` columns. */
function padded(line: string, width: number): string {
  const room = width - visibleWidth(line);
  return room > 0 ? line + " ".repeat(room) : line;
}

/** A table whose rows are made on demand, so that a long one need not be held whole. */
export interface Rows {
  readonly count: number;
  /** Row `index`, from 0; asked for twice (once to measure, once to write), so it must give the same cells. */
  row(index: number): readonly string[];
}

/**
 * The rows (the head first, unless it is empty) as lines of aligned columns, each without
 * trailing spaces, leaving out lines that would be empty. Two passes over the rows, one to
 * measure the columns and one to lay them out, so that only one row is held at a time: a
 * 200,000-task plan is written without a copy of it as a table. Linear in the size of the cells.
 */
export function* alignedLines(head: readonly string[], rows: Rows): Generator<string, void> {
  const widths: number[] = [];
  const measure = (row: readonly string[]) => {
    for (let column = 0; column < row.length; column++) {
      const cell = row[column]!;
      const width = cell.includes("\n") ? Math.max(...cell.split("\n").map(visibleWidth)) : visibleWidth(cell);
      // cli-table3 gives even a column of empty cells one character.
      widths[column] = Math.max(widths[column] ?? 1, width);
    }
  };
  if (head.length > 0) measure(head);
  for (let index = 0; index < rows.count; index++) measure(rows.row(index));
  if (head.length > 0) yield* rowLines(head, widths);
  for (let index = 0; index < rows.count; index++) yield* rowLines(rows.row(index), widths);
}

/** The lines of one row: one, or as many as its tallest cell has. */
function* rowLines(row: readonly string[], widths: readonly number[]): Generator<string, void> {
  if (!row.some((cell) => cell.includes("\n"))) {
    const line = row.map((cell, column) => padded(cell, widths[column]!)).join(GAP).trimEnd();
    if (line !== "") yield line;
    return;
  }
  const cells = row.map((cell) => cell.split("\n"));
  const height = Math.max(...cells.map((cell) => cell.length));
  for (let index = 0; index < height; index++) {
    const line = cells
      .map((cell, column) => padded(cell[index] ?? "", widths[column]!))
      .join(GAP)
      .trimEnd();
    if (line !== "") yield line;
  }
}

/** `alignedLines` of rows held in a list, joined by newlines. */
export function alignedColumns(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return [...alignedLines(head, { count: rows.length, row: (index) => rows[index]! })].join("\n");
}
