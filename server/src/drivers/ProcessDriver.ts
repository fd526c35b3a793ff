import { spawn } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { lstat, readdir, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { ULID_PATTERN } from "@drover/shared";
import type { Clock } from "../clock.js";
import type { HealthCheck, NodeStats, NodeTemplate } from "../domain.js";
import type { CommandPolicy } from "./CommandPolicy.js";
import { DriverError, type Driver, type NodeFailureListener, type NodeHandle, type PortUse, type StrayNode } from "./Driver.js";
import { meaningfulLogLine, readTail } from "./logLines.js";
import { MemoryLimits } from "./MemoryLimits.js";
import { NodeOutputs } from "./NodeOutputs.js";
import type { NodeUser } from "./NodeUser.js";
import type { LogLimits } from "./RotatingLog.js";
import { resolveCommand } from "./resolveCommand.js";
import { cpuPercent, findProcessesByEnvironment, isAlive, processUptimeMs, readProcessStat } from "./procfs.js";

export interface ProcessDriverOptions {
  /** Node records, node dirs and peer lists live under this directory; a relative template command is found from it. */
  dataDir: string;
  /** Node logs, `<node id>.log` and its rotated files (default: `<data dir>/logs`). */
  logDir?: string;
  /** How much of each node's output is kept (default: DEFAULT_LOG_LIMITS). */
  logLimits?: LogLimits;
  /** The only commands templates may run (`--allow-commands`); absent: any. */
  commands?: CommandPolicy;
  /** Nodes run as this user (`--node-user`); absent: as the server's own. */
  nodeUser?: NodeUser;
  /** Ports are handed out from this range, inclusive; never two live nodes on one port. */
  ports: { first: number; last: number };
  /** The template of the group's revision (absent: the group's current one). */
  templateOf: (group: string, revision?: number) => Promise<NodeTemplate>;
  clock: Clock;
  logger: Logger;
}

/** What the driver keeps of a node in its state file: enough to find the process again after a restart. */
interface NodeRecord {
  id: string;
  group: string;
  version: number;
  port: number;
  /** Unset between writing the record and learning the pid (a crash there is handled by searching /proc). */
  pid?: number;
  startTime?: number;
  healthCheck: HealthCheck;
  stopGraceMs: number;
  memoryMb?: number;
  /**
   * Where the server writes the node's output, read from the node's FIFO. Absent for a node an
   * earlier version of the server started, which writes `<data dir>/nodes/<id>.log` itself.
   */
  logFile?: string;
  /** The user the node runs as, when not the server's: its dir is removed as that user. */
  uid?: number;
  gid?: number;
}

/** Kubernetes' kubelet keeps 10 MiB per container log file; two files (the current one and `.1`) bound a node at 20 MiB. */
export const DEFAULT_LOG_LIMITS: LogLimits = { maxBytes: 10 * 1024 * 1024, maxFiles: 2 };

/** A node id for checking a template's command before any node exists (a ULID has no `/`). */
const SAMPLE_NODE_ID = "00000000000000000000000000";

/** Health as the monitor last saw it, for stats. */
export interface NodeHealth {
  healthy: boolean;
  consecutiveFailures: number;
  lastResult: string;
  lastCheckAt?: number;
}

const READY_POLL_MS = 100;
/** How long a failure's report waits for the rest of the node's output to reach its log. */
const OUTPUT_DRAIN_MS = 1000;

/**
 * The process driver: each node is a real OS process started from its group's template,
 * in its own session and process group so that it outlives the server. Each node's record
 * (port, pid, start time) is a JSON file under `<data dir>/nodes/`, written before the
 * process starts, so a restarted server re-adopts exactly the processes that are still the
 * same ones (pid plus start time) and treats the others as failed.
 *
 * The driver is a command runner: it runs whatever program a template names, as the
 * server's user or `--node-user`, unless `--allow-commands` restricts it (checked when a
 * template is set, and again here before every start). On disk, for node `<id>`:
 *
 *     <data dir>/nodes/<id>.json   its record (0600)
 *     <data dir>/nodes/<id>.out    the FIFO its stdout and stderr go to (0600; see NodeOutputs)
 *     <data dir>/nodes/<id>/       its working directory (0700, owned by the node's user),
 *                                  removed with its process
 *     <log dir>/<id>.log, .log.1   its output with the time of each line, capped (0600; see
 *                                  logRecords and RotatingLog), kept after the node stops
 *                                  until retention deletes its row (removeNodeFiles)
 *     <data dir>/groups/<group>/peers.json   its group's running nodes
 *
 * With `--node-user` the data dir, `nodes/` and `groups/` become 0710 and the peers files
 * 0640, all of the node user's group: a node can reach its own dir and its peers file, and
 * list or read nothing else there (not the token, not the database, not other nodes' dirs).
 *
 * A start succeeds only once the node passes its health check (the readiness gate); a
 * running node is checked every interval, and reported unhealthy after the template's
 * threshold of consecutive failures, or failed when its process is gone. Each group's
 * running nodes are listed in `<data dir>/groups/<group>/peers.json` for the nodes to find
 * one another.
 */
export class ProcessDriver implements Driver {
  readonly name = "process";
  readonly host = hostname();
  private readonly records = new Map<string, NodeRecord>();
  private readonly monitors = new Map<string, AbortController>();
  private readonly health = new Map<string, NodeHealth>();
  /** The last two CPU samples of each monitored node, for its CPU use between them. */
  private readonly cpuSamples = new Map<string, { cpuTicks: number; at: number }[]>();
  private readonly listeners: NodeFailureListener[] = [];
  private readonly dataDir: string;
  private readonly nodesDir: string;
  private readonly logDir: string;
  private readonly outputs: NodeOutputs;
  /** setpriv, to drop to the node user after a root shell puts the node in its cgroup; absent: not found. */
  private readonly setpriv: string | undefined;
  private readonly warnedOnce = new Set<string>();
  private readonly closed = new AbortController();
  private readonly memoryLimits: MemoryLimits;
  private readonly portsBeingChecked = new Set<number>();
  /** Group dirs whose mode and group this server has set. */
  private readonly sharedGroupDirs = new Set<string>();
  /** How each node process this server spawned ended, by node, once it has. */
  private readonly exits = new Map<string, string>();
  /** Wakes a node's monitor at once when its process exits (a process this server spawned). */
  private readonly exitWakers = new Map<string, () => void>();
  /** Resolves with how a process this server spawned ended, by node (its exit event may trail /proc). */
  private readonly exitEvents = new Map<string, Promise<string>>();

  constructor(private readonly options: ProcessDriverOptions) {
    this.memoryLimits = new MemoryLimits(options.logger);
    this.dataDir = resolve(options.dataDir);
    this.nodesDir = join(this.dataDir, "nodes");
    this.logDir = resolve(options.logDir ?? join(this.dataDir, "logs"));
    this.outputs = new NodeOutputs(options.logLimits ?? DEFAULT_LOG_LIMITS, options.logger, () => options.clock.now());
    this.setpriv = options.nodeUser ? resolveCommand("setpriv", "/", process.env.PATH) : undefined;
    mkdirSync(this.nodesDir, { recursive: true });
    mkdirSync(join(this.dataDir, "groups"), { recursive: true });
    mkdirSync(this.logDir, { recursive: true, mode: 0o700 });
    // The way from the data dir to each node's own dir and to its peers file (see the class comment).
    if (options.nodeUser) {
      this.shareWithNodes(this.dataDir, 0o710);
      // Passing through must reach nothing else: not a database an earlier version made readable by all.
      for (const entry of readdirSync(this.dataDir)) {
        const path = join(this.dataDir, entry);
        const stats = lstatSync(path);
        if (entry !== "nodes" && entry !== "groups" && !stats.isSymbolicLink()) chmodSync(path, stats.mode & 0o700);
      }
    }
    this.shareWithNodes(this.nodesDir, this.sharedDirMode);
    this.shareWithNodes(join(this.dataDir, "groups"), this.sharedDirMode);
    for (const file of readdirSync(this.nodesDir)) {
      if (!file.endsWith(".json")) continue;
      try {
        const record = JSON.parse(readFileSync(join(this.nodesDir, file), "utf8")) as NodeRecord;
        this.records.set(record.id, record);
        // An earlier version made records and logs readable by all.
        chmodSync(join(this.nodesDir, file), 0o600);
        if (!record.logFile && existsSync(this.legacyLogPath(record.id))) chmodSync(this.legacyLogPath(record.id), 0o600);
      } catch {
        // A record torn by a crash mid-write is replaced atomically, so this is only a stray file.
      }
    }
    const policy = options.commands;
    if (policy) this.commandProblem = (group, template, version) => this.disallowedCommand(policy, group, template, version);
    this.announcePolicy();
  }

  /** Absent without `--allow-commands`: any command runs (see Driver). */
  readonly commandProblem?: (group: string, template: NodeTemplate, version?: number) => string | undefined;

  /**
   * Why the driver would refuse to run the template's command: one that `--allow-commands`
   * does not allow, or an env that would make an allowed one load other code. Checked when a
   * template is set, with a sample node's placeholders (the group's, the version given or 1,
   * the first port); the start of each node checks its own.
   */
  private disallowedCommand(policy: CommandPolicy, group: string, template: NodeTemplate, version = 1): string | undefined {
    const substitute = placeholders({ id: SAMPLE_NODE_ID, group, version, port: this.options.ports.first });
    const command = substitute(template.command);
    const searchPath = template.env.PATH !== undefined ? substitute(template.env.PATH) : process.env.PATH;
    const program = resolveCommand(command, this.dataDir, searchPath);
    if (program === undefined) {
      return `template command ${JSON.stringify(command)} is not on the node's PATH, so --allow-commands (${policy.describe()}) cannot allow it: give its absolute path`;
    }
    if (policy.allows(program)) return policy.environmentProblem(template.env);
    const resolved = program === command ? "" : ` (${program})`;
    return `template command ${JSON.stringify(command)}${resolved} is not allowed by this server's --allow-commands (${policy.describe()}): use an allowed command, or ask the server's operator to allow it`;
  }

  async start(node: NodeHandle, signal: AbortSignal): Promise<void> {
    const known = this.records.get(node.id);
    if (known && this.adopt(known)) {
      this.attachOutput(known);
      await this.waitUntilReady(known, signal);
      this.startMonitoring(known);
      this.writePeers(node.group);
      return;
    }
    const template = await this.options.templateOf(node.group, node.revision);
    this.exits.delete(node.id);
    const record: NodeRecord = {
      id: node.id,
      group: node.group,
      version: node.version,
      port: known?.port ?? (await this.allocatePort()),
      healthCheck: template.healthCheck,
      stopGraceMs: template.stopGraceMs,
      memoryMb: node.memoryMb || undefined,
      logFile: join(this.logDir, `${node.id}.log`),
      uid: this.options.nodeUser?.uid,
      gid: this.options.nodeUser?.gid,
    };
    this.saveRecord(record);
    this.portsBeingChecked.delete(record.port);
    signal.throwIfAborted();
    await this.spawnNode(record, template);
    try {
      await this.waitUntilReady(record, signal);
    } catch (error) {
      // A node that never became ready is not left behind; the retry starts it afresh.
      await this.killProcess(record, 0);
      this.forget(record);
      throw error;
    }
    this.startMonitoring(record);
    this.writePeers(node.group);
    this.options.logger.info({ nodeId: node.id, group: node.group, pid: record.pid, port: record.port }, "node process started");
  }

  async stop(node: NodeHandle, signal: AbortSignal): Promise<void> {
    const record = this.records.get(node.id);
    if (!record) return;
    this.stopMonitoring(node.id);
    this.adopt(record);
    await this.killProcess(record, record.stopGraceMs, signal);
    this.forget(record);
    this.writePeers(node.group);
  }

  async inspect(node: NodeHandle): Promise<"running" | "stopped"> {
    const record = this.records.get(node.id);
    if (!record || !this.adopt(record)) {
      if (record) this.forget(record);
      return "stopped";
    }
    this.startMonitoring(record);
    this.writePeers(record.group);
    return "running";
  }

  onNodeFailure(listener: NodeFailureListener): void {
    this.listeners.push(listener);
  }

  /** The port range, and how many of its ports other groups' nodes hold: a node holds its port from its start's record until it is stopped or gone. */
  portUse(group: string): PortUse {
    const { first, last } = this.options.ports;
    let heldByOtherGroups = 0;
    for (const record of this.records.values()) {
      if (record.group !== group && record.port >= first && record.port <= last) heldByOtherGroups++;
    }
    return { first, last, heldByOtherGroups };
  }

  /** Records of nodes not in `keep`, and whether each one's process still runs (with its pid). */
  async strays(keep: ReadonlySet<string>): Promise<StrayNode[]> {
    return [...this.records.values()]
      .filter((record) => !keep.has(record.id))
      .map((record) => {
        const running = this.adopt(record);
        return { id: record.id, group: record.group, running, pid: running ? record.pid : undefined };
      });
  }

  /** Stops the processes of these nodes (SIGTERM, then SIGKILL after their grace) and forgets their records. */
  async sweep(nodeIds: readonly string[]): Promise<string[]> {
    const swept: NodeRecord[] = [];
    for (const id of nodeIds) {
      const record = this.records.get(id);
      if (!record) continue;
      this.stopMonitoring(record.id);
      if (this.adopt(record)) await this.killProcess(record, record.stopGraceMs);
      this.forget(record);
      swept.push(record);
    }
    for (const group of new Set(swept.map((record) => record.group))) this.writePeers(group);
    return swept.map((record) => record.id);
  }

  /** Ids named by files in the log dir and the nodes dir (see nodeIdOfFile) that have no record. */
  async nodesWithFiles(): Promise<string[]> {
    const ids = new Set<string>();
    for (const { id } of await this.nodeFileEntries()) if (!this.records.has(id)) ids.add(id);
    return [...ids];
  }

  /**
   * Removes the log files (current, rotated, a rotation's leftover `.new`), the FIFO, an earlier
   * version's log, and the working dir or a dir left mid-removal of each node that has no record:
   * a node with a record is running or starting, and keeps everything.
   */
  async removeNodeFiles(nodeIds: readonly string[]): Promise<string[]> {
    const wanted = new Set(nodeIds.filter((id) => !this.records.has(id)));
    if (wanted.size === 0) return [];
    const removed = new Set<string>();
    for (const { id, path } of await this.nodeFileEntries()) {
      // Asked again for each file: a record made while the dirs were read wins.
      if (!wanted.has(id) || this.records.has(id)) continue;
      await this.removeNodeEntry(path);
      removed.add(id);
    }
    if (removed.size > 0) this.options.logger.debug({ nodes: removed.size }, "removed the files of nodes retention deleted");
    return [...removed];
  }

  close(): void {
    this.closed.abort();
    for (const monitor of this.monitors.values()) monitor.abort();
    this.monitors.clear();
    this.outputs.close();
  }

  async kill(node: NodeHandle): Promise<boolean> {
    const record = this.records.get(node.id);
    if (!record || !this.adopt(record)) return false;
    // The monitor notices the death on its next check and reports it, as it would a crash.
    process.kill(-record.pid!, "SIGKILL");
    return true;
  }

  stats(node: NodeHandle): NodeStats | undefined {
    const record = this.records.get(node.id);
    if (!record || record.pid === undefined || record.startTime === undefined) return undefined;
    const stat = readProcessStat(record.pid);
    const alive = stat !== undefined && stat.startTime === record.startTime && stat.state !== "Z";
    const health = this.health.get(node.id);
    const samples = this.cpuSamples.get(node.id);
    return {
      pid: record.pid,
      port: record.port,
      cpuPercent: samples && samples.length === 2 ? cpuPercent(samples[0]!, samples[1]!) : undefined,
      residentBytes: alive ? stat.residentBytes : undefined,
      uptimeMs: alive ? processUptimeMs(stat) : undefined,
      healthy: health?.healthy,
      lastCheck: health?.lastResult,
      lastCheckAt: health?.lastCheckAt,
    };
  }

  logFile(node: NodeHandle): string {
    return this.logFileOf(node.id);
  }

  /** The node's log: where its record says, else in the log dir, else where an earlier version kept it. */
  private logFileOf(nodeId: string): string {
    const recorded = this.records.get(nodeId)?.logFile;
    if (recorded) return recorded;
    const current = join(this.logDir, `${nodeId}.log`);
    return !existsSync(current) && existsSync(this.legacyLogPath(nodeId)) ? this.legacyLogPath(nodeId) : current;
  }

  private legacyLogPath(nodeId: string): string {
    return join(this.nodesDir, `${nodeId}.log`);
  }

  /** Reads the output of a node an earlier server started; says once that one from an earlier version is not capped. */
  private attachOutput(record: NodeRecord): void {
    if (record.logFile) {
      this.outputs.attach(record.id, this.fifoPath(record.id), record.logFile);
    } else {
      this.warnOnce(
        `uncapped ${record.id}`,
        { nodeId: record.id, logFile: this.legacyLogPath(record.id) },
        "this node was started by an earlier version of the server and writes its log itself, without a size cap: replace it ('client nodes restart') to cap it",
      );
    }
  }

  /** Whether the record's process is alive; fills in a pid a crash kept from being recorded. */
  private adopt(record: NodeRecord): boolean {
    if (record.pid !== undefined && record.startTime !== undefined) return isAlive(record.pid, record.startTime);
    const [found] = findProcessesByEnvironment("DROVER_NODE_ID", record.id);
    if (!found) return false;
    record.pid = found.pid;
    record.startTime = found.startTime;
    this.saveRecord(record);
    return true;
  }

  private async spawnNode(record: NodeRecord, template: NodeTemplate): Promise<void> {
    const substitute = placeholders(record);
    const user = this.options.nodeUser;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: user ? user.home : process.env.HOME,
      ...Object.fromEntries(Object.entries(template.env).map(([name, value]) => [name, substitute(value)])),
      PORT: String(record.port),
      DROVER_NODE_ID: record.id,
      DROVER_VERSION: String(record.version),
      DROVER_GROUP: record.group,
      DROVER_PEERS_FILE: this.peersFile(record.group),
    };
    const command = substitute(template.command);
    const args = template.args.map(substitute);
    let output: number | undefined;
    try {
      const program = this.runnableProgram(command, env.PATH, record.group);
      const envProblem = this.options.commands?.environmentProblem(template.env);
      if (envProblem) throw new DriverError(`group ${record.group}'s ${envProblem}, with 'client group set-template'`, false);
      const cwd = this.makeNodeDir(record);
      output = this.outputs.open(record.id, this.fifoPath(record.id), record.logFile!);
      // With a memory limit the process joins its cgroup before it runs the command: a shell
      // writes its own pid (which exec keeps) into cgroup.procs. Only root may move a process
      // between cgroups, so for a node user the shell runs as root and setpriv drops to the user.
      const cgroupProcs = record.memoryMb && (!user || this.canDropPrivileges()) ? this.memoryLimits.prepare(record.id, record.memoryMb) : undefined;
      const dropTo = user && this.setpriv ? [this.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--"] : [];
      const [file, argv] = cgroupProcs
        ? ["/bin/sh", ["-c", 'echo $$ > "$0" && exec "$@"', cgroupProcs, ...dropTo, program, ...args]]
        : [program, args];
      const child = spawn(file, argv, {
        detached: true,
        stdio: ["ignore", output, output],
        env,
        cwd,
        // The program's own name as the template wrote it, as exec from a shell would give it.
        argv0: cgroupProcs ? undefined : command,
        uid: cgroupProcs ? undefined : user?.uid,
        gid: cgroupProcs ? undefined : user?.gid,
      });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", (error: NodeJS.ErrnoException) => {
          const reason = error.code === "ENOENT" ? "was not found" : `could not be started (${error.code ?? error.message})`;
          reject(
            new DriverError(
              `command ${JSON.stringify(template.command)} of group ${record.group}'s template ${reason}: fix it with 'client group set-template'`,
              false,
              { cause: error },
            ),
          );
        });
      });
      child.unref();
      this.exitEvents.set(
        record.id,
        new Promise((resolve) =>
          child.once("exit", (code, signal) => {
            const status = signal ? `killed by ${signal}` : `exited with code ${code}`;
            this.exits.set(record.id, status);
            this.exitWakers.get(record.id)?.();
            resolve(status);
          }),
        ),
      );
      const stat = readProcessStat(child.pid!);
      record.pid = child.pid!;
      record.startTime = stat?.startTime ?? 0;
      this.saveRecord(record);
    } catch (error) {
      this.forget(record);
      throw error;
    } finally {
      if (output !== undefined) closeSync(output);
    }
  }

  /**
   * The absolute path of the program the node runs (found from the data dir, where a
   * relative one always was); refuses one that is missing or that --allow-commands does not
   * allow, as the safety net behind the check when the template was set.
   */
  private runnableProgram(command: string, searchPath: string | undefined, group: string): string {
    const program = resolveCommand(command, this.dataDir, searchPath);
    const policy = this.options.commands;
    if (program !== undefined && policy && !policy.allows(program)) {
      throw new DriverError(
        `command ${JSON.stringify(command)}${program === command ? "" : ` (${program})`} of group ${group}'s template is not allowed by --allow-commands (${policy.describe()}): set an allowed one with 'client group set-template'`,
        false,
      );
    }
    if (program === undefined || !existsSync(program)) {
      throw new DriverError(`command ${JSON.stringify(command)} of group ${group}'s template was not found: fix it with 'client group set-template'`, false);
    }
    return program;
  }

  /** Whether a root shell can hand a node to its user (setpriv); says once when it cannot, and the memory limit goes unenforced. */
  private canDropPrivileges(): boolean {
    if (this.setpriv) return true;
    this.warnOnce("setpriv", { nodeUser: this.options.nodeUser?.name }, "node memory limits are not enforced for --node-user: setpriv (util-linux) is not on the server's PATH");
    return false;
  }

  /** The node's own working directory, 0700 and its user's; an earlier attempt's is kept. */
  private makeNodeDir(record: NodeRecord): string {
    const dir = this.nodeDir(record.id);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (!lstatSync(dir).isDirectory()) rmSync(dir, { force: true });
      mkdirSync(dir, { mode: 0o700, recursive: true });
    }
    chmodSync(dir, 0o700);
    if (record.uid !== undefined) chownSync(dir, record.uid, record.gid ?? record.uid);
    return dir;
  }

  /**
   * Removes a node's dir once its process is gone. It is first renamed, so that a new start
   * of the same node gets a fresh one (`<id>.removing-N`, which removeNodeFiles finds should a
   * crash interrupt the removal).
   */
  private removeNodeDir(record: NodeRecord): void {
    const dir = this.nodeDir(record.id);
    const doomed = `${dir}.removing-${process.hrtime.bigint()}`;
    try {
      renameSync(dir, doomed);
    } catch {
      return;
    }
    void this.removeDirAs(doomed, record.uid, record.gid);
  }

  /**
   * Removes a dir a node wrote in. What a node user left in it is deleted as that user, so that
   * a link it planted cannot turn the server's deletion onto a file of the server's. Never
   * rejects: a failure is logged.
   */
  private removeDirAs(dir: string, uid: number | undefined, gid: number | undefined): Promise<void> {
    const failed = (error: unknown) => this.options.logger.warn({ err: error, dir }, "could not remove a stopped node's dir");
    if (uid === undefined || uid === process.geteuid?.()) return rm(dir, { recursive: true, force: true }).catch(failed);
    // rm cannot remove the dir itself from the server's nodes dir; the server removes it once empty.
    return new Promise((resolve) => {
      const remover = spawn("rm", ["-rf", "--", dir], { uid, gid: gid ?? uid, cwd: "/", stdio: "ignore" });
      remover.once("error", (error) => {
        failed(error);
        resolve();
      });
      remover.once("exit", () => {
        try {
          rmdirSync(dir);
        } catch (error) {
          failed(error);
        }
        resolve();
      });
    });
  }

  /** The files and dirs of nodes in the log dir and the nodes dir, each with the node it is of (see nodeIdOfFile). */
  private async nodeFileEntries(): Promise<{ id: string; path: string }[]> {
    const entries: { id: string; path: string }[] = [];
    const seen = new Set<string>();
    for (const [dir, kinds] of [[this.logDir, LOG_DIR_FILES], [this.nodesDir, NODES_DIR_FILES]] as const) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (error) {
        this.options.logger.warn({ err: error, dir }, "cannot list stopped nodes' files: they stay until retention's next run");
        continue;
      }
      for (const name of names) {
        const id = nodeIdOfFile(name, kinds);
        const path = join(dir, name);
        // A --log-dir that is the nodes dir lists its files twice.
        if (id === undefined || seen.has(path)) continue;
        seen.add(path);
        entries.push({ id, path });
      }
    }
    return entries;
  }

  /** Removes one file or dir of a stopped node: a dir as its owner (see removeDirAs), anything else unlinked, never followed. */
  private async removeNodeEntry(path: string): Promise<void> {
    try {
      const stats = await lstat(path);
      if (stats.isDirectory()) await this.removeDirAs(path, stats.uid, stats.gid);
      else await rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      this.options.logger.warn({ err: error, path }, "could not remove a stopped node's file: retention tries again on its next run");
    }
  }

  /** Waits until the node passes its health check; fails when its process exits or the start timeout passes. */
  private async waitUntilReady(record: NodeRecord, signal: AbortSignal): Promise<void> {
    const { clock } = this.options;
    const check = record.healthCheck;
    const deadline = clock.now() + check.startTimeoutMs;
    let last = "no check yet";
    for (;;) {
      if (!this.adopt(record)) {
        const how = (await this.exitStatusOf(record.id)) ?? "exited";
        await this.outputs.drained(record.id, OUTPUT_DRAIN_MS);
        throw new DriverError(`node ${record.id} ${how} as it started${this.lastLogLine(record.id)}: see 'client nodes logs ${record.id}'`);
      }
      last = await this.check(record, check);
      if (last === "ok") {
        this.health.set(record.id, { healthy: true, consecutiveFailures: 0, lastResult: "ok", lastCheckAt: clock.now() });
        return;
      }
      if (clock.now() >= deadline) {
        throw new DriverError(`node ${record.id} did not pass its health check within ${check.startTimeoutMs}ms (last: ${last})`);
      }
      await clock.sleep(READY_POLL_MS, signal);
    }
  }

  /** One health check: "ok", or what went wrong. */
  private async check(record: NodeRecord, check: HealthCheck): Promise<string> {
    if (check.type === "none") return "ok";
    const timeout = AbortSignal.timeout(check.timeoutMs);
    if (check.type === "tcp") {
      return new Promise((resolve) => {
        const socket = connect({ host: "127.0.0.1", port: record.port });
        const done = (result: string) => {
          socket.destroy();
          resolve(result);
        };
        socket.once("connect", () => done("ok"));
        socket.once("error", (error: NodeJS.ErrnoException) => done(`tcp connect: ${error.code ?? error.message}`));
        timeout.addEventListener("abort", () => done(`tcp connect timed out after ${check.timeoutMs}ms`));
      });
    }
    try {
      const response = await fetch(`http://127.0.0.1:${record.port}${check.path}`, { signal: timeout });
      await response.body?.cancel();
      return response.ok ? "ok" : `GET ${check.path} answered ${response.status}`;
    } catch (error) {
      if (timeout.aborted) return `GET ${check.path} timed out after ${check.timeoutMs}ms`;
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      return `GET ${check.path}: ${cause ?? (error as Error).message}`;
    }
  }

  private startMonitoring(record: NodeRecord): void {
    if (this.monitors.has(record.id) || this.closed.signal.aborted) return;
    this.attachOutput(record);
    const controller = new AbortController();
    this.monitors.set(record.id, controller);
    void this.monitor(record, controller.signal);
  }

  private stopMonitoring(nodeId: string): void {
    this.monitors.get(nodeId)?.abort();
    this.monitors.delete(nodeId);
  }

  /** Checks a running node every interval: gone → failed; too many failed checks in a row → unhealthy (once). */
  private async monitor(record: NodeRecord, signal: AbortSignal): Promise<void> {
    const { clock } = this.options;
    const check = record.healthCheck;
    let failures = 0;
    let reported = false;
    while (!signal.aborted) {
      try {
        await this.sleepUntilCheckOrExit(record.id, check.intervalMs, signal);
      } catch {
        return;
      }
      if (!this.adopt(record)) {
        // Known for a process this server spawned (its exit event may come a moment after /proc
        // shows it gone); an adopted one's status went to its own parent.
        const exitStatus = await this.exitStatusOf(record.id);
        await this.outputs.drained(record.id, OUTPUT_DRAIN_MS);
        this.stopMonitoring(record.id);
        this.forget(record);
        this.writePeers(record.group);
        // A process killed by a signal did not say why: only an error line of its own is worth quoting.
        const killed = exitStatus?.startsWith("killed") ?? false;
        this.report(record, "failed", `its process (pid ${record.pid}) ${exitStatus ?? "exited"}${this.lastLogLine(record.id, killed)}`, exitStatus);
        return;
      }
      const stat = readProcessStat(record.pid!);
      if (stat) this.cpuSamples.set(record.id, [...(this.cpuSamples.get(record.id) ?? []), { cpuTicks: stat.cpuTicks, at: clock.now() }].slice(-2));
      const result = await this.check(record, check);
      failures = result === "ok" ? 0 : failures + 1;
      this.health.set(record.id, { healthy: failures < check.failureThreshold, consecutiveFailures: failures, lastResult: result, lastCheckAt: clock.now() });
      if (failures >= check.failureThreshold && !reported) {
        reported = true;
        this.report(record, "unhealthy", `failed ${failures} health checks in a row (last: ${result})`);
      }
    }
  }

  /** How a process this server spawned ended, waiting a moment for its exit event; undefined when unknown. */
  private async exitStatusOf(nodeId: string): Promise<string | undefined> {
    const known = this.exits.get(nodeId);
    const event = this.exitEvents.get(nodeId);
    if (known !== undefined || event === undefined) return known;
    const moment = this.options.clock.sleep(500, new AbortController().signal).then(() => undefined);
    return Promise.race([event, moment]);
  }

  /** Sleeps for the check interval, or less when the node's process exits meanwhile. */
  private sleepUntilCheckOrExit(nodeId: string, intervalMs: number, signal: AbortSignal): Promise<void> {
    if (this.exits.has(nodeId)) return Promise.resolve();
    const woken = new AbortController();
    this.exitWakers.set(nodeId, () => woken.abort());
    return this.options.clock.sleep(intervalMs, AbortSignal.any([signal, woken.signal])).catch((error: unknown) => {
      if (signal.aborted) throw error;
    }).finally(() => this.exitWakers.delete(nodeId));
  }

  private report(record: NodeRecord, state: "failed" | "unhealthy", reason: string, exitStatus?: string): void {
    this.options.logger.warn({ nodeId: record.id, group: record.group, state, reason }, "node failure");
    const handle = { id: record.id, group: record.group, version: record.version };
    for (const listener of this.listeners) listener(handle, { state, reason, exitStatus });
  }

  /** SIGTERM to the node's process group, SIGKILL after the grace period; resolves once it is gone. */
  private async killProcess(record: NodeRecord, graceMs: number, signal?: AbortSignal): Promise<void> {
    if (record.pid === undefined || record.startTime === undefined || !isAlive(record.pid, record.startTime)) return;
    const { clock } = this.options;
    const send = (name: NodeJS.Signals) => {
      try {
        process.kill(-record.pid!, name);
      } catch {
        // Already gone.
      }
    };
    send(graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const killAt = clock.now() + graceMs;
    let killed = graceMs === 0;
    while (isAlive(record.pid, record.startTime)) {
      if (!killed && clock.now() >= killAt) {
        send("SIGKILL");
        killed = true;
      }
      await clock.sleep(20, signal ?? new AbortController().signal);
    }
  }

  /** The first port of the range that no node holds and nothing else listens on. */
  private async allocatePort(): Promise<number> {
    const used = new Set([...this.records.values()].map((record) => record.port));
    const { first, last } = this.options.ports;
    let taken = 0;
    for (let port = first; port <= last; port++) {
      if (used.has(port) || this.portsBeingChecked.has(port)) continue;
      // Held from the probe until the caller's record holds it, so two starts at once cannot both get it.
      this.portsBeingChecked.add(port);
      // Another program may hold a port of the range; handing it out would fail every start.
      if (await canListen(port)) return port;
      this.portsBeingChecked.delete(port);
      taken++;
    }
    const others = taken > 0 ? ` (${taken} of them by other programs)` : "";
    throw new DriverError(
      `no free port in ${first}..${last}: all ${last - first + 1} are in use${others}; widen --port-range or scale down`,
      false,
    );
  }

  private forget(record: NodeRecord): void {
    this.records.delete(record.id);
    this.exits.delete(record.id);
    this.exitEvents.delete(record.id);
    this.health.delete(record.id);
    this.cpuSamples.delete(record.id);
    this.memoryLimits.release(record.id);
    rmSync(this.recordFile(record.id), { force: true });
    rmSync(this.fifoPath(record.id), { force: true });
    this.removeNodeDir(record);
  }

  private saveRecord(record: NodeRecord): void {
    this.records.set(record.id, record);
    // Private like the database: a record names a process group the server may signal.
    writeAtomically(this.recordFile(record.id), JSON.stringify(record), 0o600);
  }

  private writePeers(group: string): void {
    const peers = [...this.records.values()]
      .filter((record) => record.group === group && this.monitors.has(record.id))
      .map((record) => ({ id: record.id, host: "127.0.0.1", port: record.port, version: record.version }));
    const file = this.peersFile(group);
    const dir = join(file, "..");
    if (!this.sharedGroupDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.shareWithNodes(dir, this.sharedDirMode);
      this.sharedGroupDirs.add(dir);
    }
    writeAtomically(file, JSON.stringify({ peers }), this.options.nodeUser ? 0o640 : 0o600, this.options.nodeUser?.gid);
  }

  /** 0710 where nodes run as another user (they pass through, and list nothing), else 0700. */
  private get sharedDirMode(): number {
    return this.options.nodeUser ? 0o710 : 0o700;
  }

  /** Sets a path's mode and, where nodes run as another user, gives it to that user's group (see the class comment). */
  private shareWithNodes(path: string, mode: number): void {
    chmodSync(path, mode);
    const user = this.options.nodeUser;
    if (user) chownSync(path, lstatSync(path).uid, user.gid);
  }

  private warnOnce(key: string, fields: object, message: string): void {
    if (this.warnedOnce.has(key)) return;
    this.warnedOnce.add(key);
    this.options.logger.warn(fields, message);
  }

  /** Says at start what the driver lets a template run, and as whom. */
  private announcePolicy(): void {
    const { commands, nodeUser, logger } = this.options;
    const runAs = nodeUser ? `user ${nodeUser.name} (uid ${nodeUser.uid})` : `the server's own user (uid ${process.geteuid?.()})`;
    if (commands) {
      logger.info({ allowCommands: commands.patterns, nodeUser: nodeUser?.name }, `nodes run only the commands --allow-commands allows, as ${runAs}`);
    } else {
      logger.warn(
        { nodeUser: nodeUser?.name },
        `nodes run any command a template names, as ${runAs}: whoever holds the API token can run any program; restrict it with --allow-commands (and --node-user)`,
      );
    }
  }

  /** The log's most telling line, for a failure's reason: its error line, or else its last line. */
  private lastLogLine(nodeId: string, errorsOnly = false): string {
    try {
      const line = meaningfulLogLine(readTail(this.logFileOf(nodeId), 16_384), errorsOnly);
      return line ? ` (its log says: ${line.slice(0, 200)})` : "";
    } catch {
      return "";
    }
  }

  private recordFile(nodeId: string): string {
    return join(this.nodesDir, `${nodeId}.json`);
  }

  private fifoPath(nodeId: string): string {
    return join(this.nodesDir, `${nodeId}.out`);
  }

  private nodeDir(nodeId: string): string {
    return join(this.nodesDir, nodeId);
  }

  private peersFile(group: string): string {
    return join(this.dataDir, "groups", group, "peers.json");
  }
}

/** What follows a node id in the names of its files in the log dir: `.log`, rotated `.log.N`, a rotation's `.log.new`. */
const LOG_DIR_FILES = /^\.log(\.\d+|\.new)?$/;
/** … and in the nodes dir: its working dir, one left mid-removal, its FIFO, an earlier version's log (not its record). */
const NODES_DIR_FILES = /^(\.removing-\d+|\.out|\.log)?$/;

/**
 * The node a file is of, when its name is a node id (a ULID) followed by what `kinds` allows;
 * anything else (another program's file in a shared --log-dir) is no node's.
 */
function nodeIdOfFile(name: string, kinds: RegExp): string | undefined {
  const id = name.slice(0, 26);
  return ULID_PATTERN.test(id) && kinds.test(name.slice(26)) ? id : undefined;
}

/** Writes a file so that a reader or a crash sees the old content or the new, never a mix. */
function writeAtomically(path: string, content: string, mode: number, group?: number): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, content, { mode });
  // A temporary file left by a crash keeps the mode it was made with.
  chmodSync(temporary, mode);
  if (group !== undefined) chownSync(temporary, lstatSync(temporary).uid, group);
  renameSync(temporary, path);
}

/** Replaces `{version}`, `{port}`, `{node_id}` and `{group}` in a template's text with the node's. */
function placeholders(node: { id: string; group: string; version: number; port: number }): (text: string) => string {
  return (text) =>
    text
      .replaceAll("{version}", String(node.version))
      .replaceAll("{port}", String(node.port))
      .replaceAll("{node_id}", node.id)
      .replaceAll("{group}", node.group);
}

/** Whether this process could listen on the port on loopback right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}
