import { isAbsolute } from "node:path";

/**
 * Which programs the process driver may run: `--allow-commands`, a list of absolute paths
 * and globs over them. A glob's `*` and `?` match within one path segment, `**` across
 * segments: `/opt/app/*` allows `/opt/app/server` but not `/opt/app/bin/server`;
 * `/opt/app/**` allows both. Without a list every command is allowed.
 *
 * What is matched is the command as it will run: a relative path resolved from the data dir,
 * a bare name found along the node's PATH (see resolveCommand), never the text a template
 * gives. A template cannot dodge the list with `../` or with a PATH of its own. The list
 * restricts the program, not its arguments: allowing a shell or an interpreter allows
 * whatever it can be told to run.
 *
 * Nor does it restrict the environment, except for the variables that make an allowed program
 * load code the template names (CODE_LOADING_ENVIRONMENT): a template that sets one is refused
 * as one naming a program off the list is. Without a list nothing is refused: any program runs.
 */
export class CommandPolicy {
  private readonly matchers: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.matchers = patterns.map(globToRegExp);
  }

  /** Parses the flag's value, refusing an entry that is not an absolute path (commander parser). */
  static parse(text: string): CommandPolicy {
    const patterns = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
    if (patterns.length === 0) throw new Error(`${JSON.stringify(text)} names no command: list absolute paths or globs, like /usr/bin/python3,/opt/app/bin/*`);
    for (const pattern of patterns) {
      if (!isAbsolute(pattern)) throw new Error(`${JSON.stringify(pattern)} is not an absolute path: write it like /usr/bin/python3 or /opt/app/bin/*`);
    }
    return new CommandPolicy(patterns);
  }

  /** Whether the resolved, absolute command may run. */
  allows(command: string): boolean {
    return this.matchers.some((matcher) => matcher.test(command));
  }

  /**
   * Why the template's environment would let it run code the list does not allow: the
   * variables of CODE_LOADING_ENVIRONMENT it sets, each with what reads it; undefined when none.
   */
  environmentProblem(env: Readonly<Record<string, string>>): string | undefined {
    const refused = Object.keys(env)
      .sort()
      .flatMap((name) => {
        const rule = codeLoadingRule(name);
        return rule ? [`${name} (read by ${rule.readBy})`] : [];
      });
    if (refused.length === 0) return undefined;
    const [them, they] = refused.length === 1 ? ["it", "makes"] : ["them", "make"];
    return `template env ${refused.join(", ")} ${they} an allowed program load code the template chooses, so this server's --allow-commands (${this.describe()}) refuses ${them}: remove ${them} from the template's env`;
  }

  /** The list as the flag gave it, for messages. */
  describe(): string {
    return this.patterns.join(",");
  }
}

/**
 * Environment variables through which a template could make an allowed program run code of its
 * choosing: the dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT and every other LD_),
 * and the start-up hooks and module paths of the common interpreters. Names end in `*` for a
 * prefix. Refused only under `--allow-commands` (see CommandPolicy); the README lists them.
 * Not a sandbox: a program that reads code from a file or an argument still does.
 */
export const CODE_LOADING_ENVIRONMENT: readonly { readBy: string; names: readonly string[] }[] = [
  { readBy: "the dynamic loader", names: ["LD_*"] },
  { readBy: "glibc's iconv", names: ["GCONV_PATH"] },
  { readBy: "bash", names: ["BASH_ENV", "BASH_FUNC_*", "BASHOPTS", "SHELLOPTS"] },
  { readBy: "sh", names: ["ENV"] },
  { readBy: "Node.js", names: ["NODE_OPTIONS", "NODE_PATH"] },
  { readBy: "Python", names: ["PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME"] },
  { readBy: "Perl", names: ["PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB"] },
  { readBy: "Ruby", names: ["RUBYOPT", "RUBYLIB"] },
  { readBy: "Java", names: ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"] },
  { readBy: ".NET", names: ["DOTNET_STARTUP_HOOKS"] },
];

/** The rule of CODE_LOADING_ENVIRONMENT that refuses the variable, if one does (names are case-sensitive, as the programs read them). */
function codeLoadingRule(name: string): { readBy: string } | undefined {
  return CODE_LOADING_ENVIRONMENT.find((rule) =>
    rule.names.some((refused) => (refused.endsWith("*") ? name.startsWith(refused.slice(0, -1)) : name === refused)),
  );
}

/** `*` and `?` within a segment, `**` across segments, everything else literal. */
function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
