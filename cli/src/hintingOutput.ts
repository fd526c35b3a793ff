import { withGivenOptions } from "./hints.js";
import { Output } from "./render.js";

/**
 * The client's output, with the options the user gave put into the commands the server's
 * messages quote (see hints.ts): in every note on stderr, and in the lines of tables and
 * streams, but not in JSON (`--output json` prints the server's words as they are) or in a
 * node's log text (written with `write`, never rewritten).
 */
export class HintingOutput extends Output {
  /** False for JSON output, whose lines are data. */
  rewriteLines = true;

  override line(text = ""): void {
    super.line(this.rewriteLines ? withGivenOptions(text) : text);
  }

  override note(text: string, stderr?: NodeJS.WriteStream): void {
    super.note(withGivenOptions(text), stderr);
  }
}
