import { accessSync, constants, statSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * The absolute path of the program a command runs, as exec would find it with `baseDir` as
 * the working directory: a command with a `/` relative to `baseDir`, a bare name along
 * `searchPath` (an empty or relative entry, too, relative to `baseDir`), the first regular file
 * there that may be executed. Undefined when a bare name is found nowhere.
 */
export function resolveCommand(command: string, baseDir: string, searchPath: string | undefined): string | undefined {
  if (command.includes("/")) return resolve(baseDir, command);
  for (const entry of (searchPath ?? "").split(":")) {
    const candidate = join(resolve(baseDir, entry), command);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return undefined;
}
