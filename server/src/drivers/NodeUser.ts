import { execFileSync } from "node:child_process";

/** The user the process driver runs nodes as (`--node-user`), as the system's user database has it. */
export interface NodeUser {
  name: string;
  uid: number;
  /** The user's primary group: nodes run with it and no supplementary groups. */
  gid: number;
  /** Given to nodes as HOME, as Docker does for a container's user. */
  home: string;
}

/**
 * Looks a user up by name or uid (`getent passwd`, so NSS users count too); refuses one that
 * does not exist, and a server that could not switch to it (only root can start a process
 * as another user). Each refusal is one line naming the flag.
 */
export function lookUpNodeUser(name: string, serverUid = process.geteuid?.() ?? 0): NodeUser {
  let entry: string;
  try {
    entry = execFileSync("getent", ["passwd", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0]!;
  } catch (error) {
    // getent exits 2 for a key it does not find.
    if ((error as { status?: number }).status === 2) throw new Error(`--node-user ${name}: no such user on this host: create it, or name another`);
    throw new Error(`--node-user ${name}: the user database could not be read (${(error as Error).message.split("\n")[0]})`, { cause: error });
  }
  const [login, , uid, gid, , home] = entry.split(":");
  const user = { name: login!, uid: Number(uid), gid: Number(gid), home: home || "/" };
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid)) throw new Error(`--node-user ${name}: the user database's entry is malformed: ${entry}`);
  if (serverUid !== 0 && user.uid !== serverUid) {
    throw new Error(`--node-user ${name} needs the server to run as root: only root can start processes as another user (the server runs as uid ${serverUid})`);
  }
  return user;
}
