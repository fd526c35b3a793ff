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

  /** The list as the flag gave it, for messages. */
  describe(): string {
    return this.patterns.join(",");
  }
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
