/**
 * Boolean flags that an environment variable can also set, read strictly. commander sets such
 * a flag whenever its variable exists, whatever it holds, so `DROVER_INSECURE_NO_AUTH=false`
 * turned authentication off. The server and the client both call `applyBooleanEnvironment`
 * before parsing.
 */

/** A variable's value as a boolean: 1/true/0/false in any case; empty means false (as if unset); anything else undefined. */
export function parseBooleanSetting(value: string): boolean | undefined {
  switch (value.trim().toLowerCase()) {
    case "1":
    case "true":
      return true;
    case "0":
    case "false":
    case "":
      return false;
    default:
      return undefined;
  }
}

/** The parts of a commander Command and Option this needs (shared does not depend on commander). */
interface OptionWithEnvironment {
  readonly flags: string;
  envVar?: string;
  isBoolean(): boolean;
  attributeName(): string;
}
interface CommandWithOptions {
  readonly options: readonly OptionWithEnvironment[];
  readonly commands: readonly CommandWithOptions[];
}

/**
 * Checks every boolean option of the command (and its subcommands) whose variable is set:
 * a false value detaches the variable from the option, so that commander leaves the flag
 * off; a value that is not a boolean throws, with one line naming the variable and the rule.
 */
export function applyBooleanEnvironment(command: CommandWithOptions, env: Record<string, string | undefined>): void {
  for (const option of command.options) {
    if (!option.envVar || !option.isBoolean()) continue;
    const value = env[option.envVar];
    if (value === undefined) continue;
    const parsed = parseBooleanSetting(value);
    if (parsed === undefined) {
      const flag = option.flags.split(/[ ,]+/).find((part) => part.startsWith("--")) ?? option.attributeName();
      throw new Error(`${option.envVar}=${JSON.stringify(value)} is not a boolean (it sets ${flag}): use 1 or true, 0 or false, or leave it empty`);
    }
    if (!parsed) option.envVar = undefined;
  }
  for (const subcommand of command.commands) applyBooleanEnvironment(subcommand, env);
}
