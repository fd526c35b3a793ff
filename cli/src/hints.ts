/**
 * Hints: the command lines the client suggests (`list them with: client nodes ls`) repeat the
 * global options the user gave on the command line, so that a hint pasted back acts on the same
 * server and group, the same way: `client --server 10.0.0.5:8888 --group web nodes ls`.
 *
 * Which options: --server, --group, --output, --token-file, --tls and --tls-ca when given on the
 * command line. One set by a DROVER_* variable is left out (the variable still applies where
 * the hint is pasted), and so is --token, which would show in the terminal's scrollback.
 *
 * The client writes its own hints with clientCommand. The server's messages name commands too
 * (`not found: list nodes with 'client nodes ls --all'`), always quoted that way; the output
 * puts the options into those as it prints them (see withGivenOptions and hintingOutput.ts).
 */
import type { Command } from "commander";

/** The options a hint repeats, by commander's name, and how each is written. */
const REPEATED: readonly [name: string, flag: string][] = [
  ["server", "--server"],
  ["group", "--group"],
  ["output", "-o"],
  ["tokenFile", "--token-file"],
  ["tls", "--tls"],
  ["tlsCa", "--tls-ca"],
];

/** ` --server 10.0.0.5:8888 --group web`: what the user gave of the options a hint repeats. */
export function givenGlobalOptions(command: Command): string {
  const options = command.optsWithGlobals<Record<string, unknown>>();
  return REPEATED.filter(([name]) => command.getOptionValueSourceWithGlobals(name) === "cli")
    .map(([name, flag]) => (options[name] === true ? ` ${flag}` : ` ${flag} ${shellQuoted(String(options[name]))}`))
    .join("");
}

let given = "";

/** Sets the options every hint of this run repeats (see givenGlobalOptions); the client runs one command per process. */
export function repeatInHints(options: string): void {
  given = options;
}

/** The commands that act on no one group (`groups ls`): their hints leave out --group. */
const GROUPLESS = /^groups\b/;

/** The given options a hint for `rest` repeats: all of them, but --group for a command that takes none. */
function optionsFor(rest: string): string {
  return GROUPLESS.test(rest) ? given.replace(/ --group (?:'(?:[^']|'\\'')*'|\S+)/, "") : given;
}

/** `client --group web nodes ls`: a command line to suggest, with the options the user gave. */
export function clientCommand(rest: string): string {
  return `client${optionsFor(rest)} ${rest}`;
}

/**
 * The text with the given options put into every command it quotes: `'client nodes ls'`
 * becomes `'client --group web nodes ls'`. A quoted command that already has options is left
 * alone, so a hint made with clientCommand is never given them twice.
 */
export function withGivenOptions(text: string): string {
  return given === "" ? text : text.replace(/'client (?=([a-z][^']*))/g, (_, rest: string) => `'client${optionsFor(rest)} `);
}

/** A word as a POSIX shell takes it back: quoted only when it must be. */
function shellQuoted(word: string): string {
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
