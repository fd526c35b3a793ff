/**
 * `client completion bash|zsh`: a shell completion script made from the commands and options
 * the client itself defines (its commander tree), so that it never falls behind them. It
 * completes commands and subcommands, each command's options and the global ones, the values of
 * the options that take one of a few words (`-o table|json`), and file names for options that
 * name a file. It completes no ids: that would call the server on every Tab.
 */
import type { Command } from "commander";
import { UsageError } from "./errors.js";

export const SHELLS = ["bash", "zsh"] as const;
export type Shell = (typeof SHELLS)[number];

/** The words an option's value may be, for the options whose value is one of a few. */
const OPTION_VALUES: Record<string, readonly string[]> = {
  "--output": ["table", "json"],
  "-o": ["table", "json"],
  "--format": ["table", "dot", "mermaid"],
  "--health": ["http", "tcp", "none"],
  "--on-failure": ["stop", "rollback"],
};
/** Options whose value is a file. */
const FILE_OPTIONS = ["--token-file", "--tls-ca"];

/** What one command (`nodes ls`; `` for the client itself) has to complete. */
interface CommandWords {
  path: string;
  subcommands: string[];
  options: string[];
  /** The options that take a value: the word after one is not a command. */
  valued: string[];
  /** Words its first argument may be (`completion bash`). */
  arguments: string[];
}

/** Reads `shell` as the completion command's argument; throws a UsageError naming the shells. */
export function shellArgument(text: string): Shell {
  if ((SHELLS as readonly string[]).includes(text)) return text as Shell;
  throw new UsageError(`shell ${JSON.stringify(text)} is invalid: use ${SHELLS.join(" or ")}`);
}

/** The completion script for `shell`, for the program's commands as they are now. */
export function completionScript(shell: Shell, program: Command): string {
  const commands = commandWords(program, "");
  // The client's own options apply to every command: offered as global, the root keeps only its --version and help.
  const root = commands[0]!;
  const ownToRoot = (flag: string) => flag === "--version" || HELP_FLAGS.includes(flag);
  const global = { options: root.options.filter((flag) => !ownToRoot(flag)), valued: root.valued };
  commands[0] = { ...root, options: root.options.filter(ownToRoot), valued: [] };
  const tables = [
    caseFunction("_client_subcommands", commands.map((command) => [command.path, command.subcommands])),
    caseFunction("_client_options", commands.map((command) => [command.path, command.options])),
    caseFunction("_client_valued", commands.map((command) => [command.path, command.valued])),
    caseFunction("_client_arguments", commands.map((command) => [command.path, command.arguments])),
    caseFunction("_client_values", Object.entries(OPTION_VALUES)),
    `_client_global_options() { echo ${quoteWords(global.options)}; }`,
    `_client_global_valued() { echo ${quoteWords(global.valued)}; }`,
    `_client_file_options() { echo ${quoteWords(FILE_OPTIONS)}; }`,
  ].join("\n");
  return shell === "bash" ? bashScript(tables) : zshScript(tables);
}

/** Every command's help flags (see main.ts), which commander keeps apart from its options. */
const HELP_FLAGS = ["-h", "--help"];

function commandWords(command: Command, path: string): CommandWords[] {
  const options = command.options;
  const words: CommandWords = {
    path,
    subcommands: command.commands.map((sub) => sub.name()),
    options: [...options.flatMap((option) => [option.long, option.short]).filter((flag): flag is string => Boolean(flag)), ...HELP_FLAGS],
    valued: options.filter((option) => option.required || option.optional).flatMap((option) => [option.long, option.short]).filter((flag): flag is string => Boolean(flag)),
    arguments: path === "completion" ? [...SHELLS] : [],
  };
  return [words, ...command.commands.flatMap((sub) => commandWords(sub, path ? `${path} ${sub.name()}` : sub.name()))];
}

/** A function of one argument that echoes the words its case gives: `name() { case "$1" in "nodes ls") echo --all --wide;; esac; }`. */
function caseFunction(name: string, cases: readonly (readonly [string, readonly string[]])[]): string {
  const branches = cases.filter(([, words]) => words.length > 0).map(([key, words]) => `    ${JSON.stringify(key)}) echo ${quoteWords(words)} ;;`);
  return [`${name}() {`, '  case "$1" in', ...branches, "  esac", "}"].join("\n");
}

/** Words for `echo`, each a plain flag or name; anything else would be a mistake in the tree. */
function quoteWords(words: readonly string[]): string {
  for (const word of words) if (!/^[A-Za-z0-9_.-]+$/.test(word)) throw new Error(`a completion word must be plain: ${JSON.stringify(word)}`);
  return words.join(" ");
}

/**
 * Finds the command the words before the cursor name (`$path`), skipping each option's value and
 * any argument; `help` names a command without running it. The same in both shells: they share
 * this much of their syntax, given the words as a 0-based list from the first after `client`.
 */
const WALK = `
# Sets _client_path to the command the given words name, and _client_help when they begin with help.
_client_walk() {
  _client_path=""
  _client_help=""
  local word skip="" valued
  for word in "$@"; do
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$word" in
      --*=*) ;;
      -*)
        valued=" $(_client_valued "$_client_path") $(_client_global_valued) "
        case "$valued" in *" $word "*) skip=1 ;; esac
        ;;
      *)
        if [ -z "$_client_path" ] && [ -z "$_client_help" ] && [ "$word" = help ]; then
          _client_help=1
        elif [ -n "$(_client_subcommands "$_client_path")" ] && case " $(_client_subcommands "$_client_path") " in *" $word "*) true ;; *) false ;; esac; then
          _client_path="\${_client_path:+$_client_path }$word"
        fi
        ;;
    esac
  done
}

# The words to offer after the walked words, for the word being written (cur) after prev.
_client_candidates() {
  local cur="$1" prev="$2"
  case "$prev" in -*)
    case "$cur" in -*) ;; *)
      case " $(_client_valued "$_client_path") $(_client_global_valued) " in *" $prev "*)
        case " $(_client_file_options) " in *" $prev "*) echo "__files__"; return ;; esac
        _client_values "$prev"
        return
        ;;
      esac
      ;;
    esac
    ;;
  esac
  case "$cur" in
    -*) if [ -z "$_client_help" ]; then echo "$(_client_options "$_client_path") $(_client_global_options)"; fi ;;
    *) echo "$(_client_subcommands "$_client_path") $(_client_arguments "$_client_path")" ;;
  esac
}
`;

function bashScript(tables: string): string {
  return `# bash completion for client, Drover's command-line client (made by 'client completion bash').
# Load it with: source <(client completion bash)
# or keep it:   client completion bash > ~/.local/share/bash-completion/completions/client
${tables}
${WALK}
_client_completion() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev=""
  if [ "$COMP_CWORD" -gt 1 ]; then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  _client_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}"
  local candidates
  candidates="$(_client_candidates "$cur" "$prev")"
  if [ "$candidates" = "__files__" ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
  fi
}
complete -F _client_completion client
`;
}

function zshScript(tables: string): string {
  return `#compdef client
# zsh completion for client, Drover's command-line client (made by 'client completion zsh').
# Load it with: source <(client completion zsh)   (after compinit)
# or keep it as _client in a directory of $fpath.
${tables}
${WALK}
_client() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}"
  _client_walk "\${(@)words[2,CURRENT-1]}"
  local candidates
  candidates="$(_client_candidates "$cur" "$prev")"
  if [[ "$candidates" == "__files__" ]]; then
    _files
  else
    compadd -- \${=candidates}
  fi
}
if [[ "\${funcstack[1]}" == "_client" ]]; then
  _client "$@"
else
  compdef _client client
fi
`;
}
