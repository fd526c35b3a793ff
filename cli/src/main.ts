import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { applyBooleanEnvironment, DEFAULT_GROUP } from "@drover/shared";
import { completionScript, shellArgument } from "./completion.js";
import { DEFAULT_SERVER, type RawGlobalOptions, resolveGlobalOptions } from "./connection.js";
import { type CommandContext, commandContext, interrupt, interruptNotice } from "./context.js";
import { describeError, ExitCode, oneLine, UsageError } from "./errors.js";
import { graphsCancel, graphsList, graphsPause, graphsPromote, graphsResume, graphsShow } from "./graphs.js";
import { collect, groupDelete, groupSetTemplate, groupShow } from "./group.js";
import { groupStatus, groupsList } from "./groups.js";
import { HintingOutput } from "./hintingOutput.js";
import { givenGlobalOptions, repeatInHints, withGivenOptions } from "./hints.js";
import { history } from "./history.js";
import { nodesClone, nodesDescribe, nodesKill, nodesList, nodesLogs, nodesRestart, nodesStats, nodesStop } from "./nodes.js";
import { notDrover } from "./notDrover.js";
import { rollback } from "./rollback.js";
import { tasksWatch } from "./tasks.js";
import { tlsMismatch } from "./tlsMismatch.js";
import { tokenRefused } from "./tokenRefused.js";
import { update } from "./update.js";

const out = new HintingOutput(process.stdout);
/** The server named on the command line, for error messages, once known. */
let serverForErrors = process.env.DROVER_SERVER || DEFAULT_SERVER;

/** Runs a command's body with the checked global options and a connection, and records its exit code. */
function run(body: (context: CommandContext, command: Command) => Promise<ExitCode>) {
  return async (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const givenIn = (option: string): "cli" | "env" | undefined => {
      const source = command.getOptionValueSourceWithGlobals(option);
      return source === "cli" ? "cli" : source === "env" ? "env" : undefined;
    };
    const raw = { ...command.optsWithGlobals<RawGlobalOptions>(), givenIn: { token: givenIn("token"), tokenFile: givenIn("tokenFile") } };
    serverForErrors = raw.server ?? serverForErrors;
    repeatInHints(givenGlobalOptions(command));
    out.rewriteLines = raw.output !== "json";
    if (command.getOptionValueSourceWithGlobals("token") === "cli") {
      process.stderr.write("client: warning: --token shows in the process list (ps) to every user of this machine: use --token-file or DROVER_TOKEN_FILE instead\n");
    }
    const context = commandContext(resolveGlobalOptions(raw), out);
    try {
      process.exitCode = await body(context, command);
    } catch (error) {
      throw (await tlsMismatch(error, context.globals)) ?? (await notDrover(error, context.globals)) ?? tokenRefused(error, context.globals) ?? error;
    } finally {
      context.close();
    }
  };
}

const example = (...lines: string[]) => `\nExample:\n${lines.map((line) => `  $ ${line}`).join("\n")}\n`;

/**
 * Adds the flags of a node template, which `group set-template` and `update` both take, after
 * `--command` (mandatory for set-template; on update, any of them sends a whole template).
 */
function withTemplateOptions(command: Command, commandOption: Option): Command {
  return command
    .addOption(commandOption)
    .option("--arg <arg>", "an argument of the command; repeat for each, in order", collect)
    .option("--env <NAME=VALUE>", "an environment variable of each node; repeat for each", collect)
    .option("--health <type>", "http (GET a path on the node's port, healthy on 2xx; the default), tcp (the port accepts a connection) or none (healthy while it runs)")
    .option("--health-path <path>", "the path an http check gets (default /healthz)")
    .option("--health-interval <duration>", "how often the health is checked, 100ms to 1h (default: the server's, 1s)")
    .option("--health-timeout <duration>", "how long one check may take, 10ms to 1m (default: the server's, 1s)")
    .option("--health-threshold <n>", "failed checks in a row after which a running node is unhealthy, 1 to 100 (default: the server's, 3)")
    .option("--start-timeout <duration>", "how long a starting node may take to pass its first check, 100ms to 1h (default: the server's, 10s)")
    .option("--stop-grace <duration>", "after SIGTERM, how long a node may take to exit before SIGKILL, up to 10m (default: the server's, 5s)");
}

/** How a command's node or graph argument may be written (see readIdReference in @drover/shared). */
const NODE_ID_HELP = "the node's id, a unique prefix of it (4 characters or more), or its short form as tables print it (01JDX3…8JNE)";
const GRAPH_ID_HELP = "its id, a unique prefix of it (4 characters or more), or its short form as tables print it (01JDX4…K2M7)";
const IN_PROGRESS_HELP = `Without an id: the group's graph in progress, its newest pending, running or paused graph (a heal
running beside a rollout is not taken for it); refused (exit 1) when all its graphs have settled.`;

const TEMPLATE_HELP = `In the command, the args and the env values, {version}, {port}, {node_id} and {group} are replaced
by the server for each node; each node also gets PORT, DROVER_NODE_ID, DROVER_VERSION, DROVER_GROUP
and DROVER_PEERS_FILE in its environment. Durations are written like 500ms, 90s or 1h30m.`;

/** Levenshtein distance, for "did you mean" on unknown commands. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/**
 * The action of a command that only groups subcommands: commander would print the whole
 * help as an error; this says in one line what is missing or unknown.
 */
function groupAction(name: string | undefined) {
  return (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const given = command.args[0];
    // `client` alone is how a new user asks what it can do, as with kubectl.
    if (given === undefined && !name) command.help();
    throw unknownCommand(name, command, given);
  };
}

/** The usage error for a missing (`given` undefined) or unknown subcommand of `command`, whose words are `name`. */
function unknownCommand(name: string | undefined, command: Command, given: string | undefined): UsageError {
  const names = command.commands.map((sub) => sub.name());
  const prefix = name ? `${name} ` : "";
  const help = `see client ${prefix}--help`;
  if (given === undefined) {
    return new UsageError(`${name ? `${name} needs a command` : "no command given"}: use one of ${names.join(", ")} (${help})`);
  }
  const near = names.find((candidate) => distance(candidate, given) <= 2);
  return new UsageError(`unknown command '${prefix}${given}'${near ? ` (did you mean '${prefix}${near}'?)` : ""}: use one of ${names.join(", ")} (${help})`);
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export function buildProgram(): Command {
  const program = new Command("client")
    .description("Drover's command-line client: set a group's spec, and watch the task graph that gets it there.")
    .version(version(), "--version", "print the client's version")
    .addOption(new Option("--server <host:port>", "the Drover server to talk to").env("DROVER_SERVER").default(DEFAULT_SERVER))
    .addOption(new Option("--group <name>", "the group of nodes to act on").env("DROVER_GROUP").default(DEFAULT_GROUP))
    .addOption(new Option("-o, --output <format>", "table (for people) or json (for programs)").default("table"))
    .addOption(new Option("--token <token>", "the server's token; other users see it in ps: prefer --token-file (default: the one a server on this machine recorded for --server)").env("DROVER_TOKEN"))
    .addOption(new Option("--token-file <file>", "read the server's token from this file, such as <data dir>/token (the way to pass a token in scripts)").env("DROVER_TOKEN_FILE"))
    .addOption(new Option("--tls", "connect with TLS, trusting the system's certificate authorities").env("DROVER_TLS"))
    .addOption(new Option("--tls-ca <file>", "connect with TLS, trusting this CA certificate (PEM)").env("DROVER_TLS_CA"))
    .helpOption("-h, --help", "show help for the command")
    .configureHelp({ showGlobalOptions: true })
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`client: ${oneLine(text.replace(/^error: /, ""))}\n`),
    })
    .allowExcessArguments(true)
    .action(groupAction(undefined))
    .addHelpText(
      "after",
      `${example(
        "client update 3 2",
        "client --group web nodes ls -o json",
        "client tasks watch",
        "client history",
        "client rollback",
        "client nodes stats <id>",
        "client group show",
        "client groups ls",
        "client --group web status",
      )}
Exit codes: 0 success; 1 the operation ran and failed (graph failed, cancelled or superseded; a stale
--expect-revision; a graph already settled; a spec the host cannot hold); 2 bad usage or invalid
argument (also plaintext to a TLS server, or TLS to a plaintext one); 3 server unreachable or
unavailable; 4 not allowed; 5 not found.
`,
    );

  const updateCommand = program
    .command("update")
    .summary("set the group's spec, print the plan and follow it")
    .description(
      "set the group's spec (count nodes at version, and optionally what they run), print the plan, then follow its tasks to the end; exits 0 only if the graph succeeded (with --on-failure rollback, the rollback its failure started is followed too, and the exit is still 1)",
    )
    .argument("<count>", "how many nodes the group should have, 0 to 100000")
    .argument("<version>", "the version every node should run, from 1")
    .option("--max-surge <n|p%>", "nodes above count allowed during a rolling replacement, or a percent of count rounded up (default 0)")
    .option("--max-unavailable <n|p%>", "nodes below count allowed during a rolling replacement, or a percent of count rounded down (default 1)")
    .option("--min-ready <duration>", "how long a started node must stay running and healthy before it counts as available and its start succeeds, like 10s; 0: at once (default: the server's)")
    .option("--canary <n>", "replace (or add) this many nodes first, then wait at a promote gate for 'client graphs promote' (default 0: no canary)")
    .option("--auto-promote-after <duration>", "with --canary: promote by itself once the canaries have been available this long, like 5m")
    .option("--on-failure <policy>", "if the graph fails: stop (leave it to an operator) or rollback (to the last revision reached, and follow that); default stop")
    .option("--task-timeout <duration>", "how long one attempt of a task may take, like 30s or 5m (default: the server's)")
    .option("--progress-deadline <duration>", "how long the graph may go without a task finishing (or while a task waits) before it fails, like 10m (default: the server's)")
    .option("--cpu <cpu>", "cpu reserved per node: millicores like 500m, or cores like 0.5 or 2 (default: none)")
    .option("--memory <size>", "memory reserved per node: 256Mi, 1.5Gi, 1Ti, or a number of MiB (default: none)")
    .option("--expect-revision <n>", "refuse unless the group is still at revision n (0: it has none yet), so that a plan made from stale information is never applied")
    .option("--dry-run", "print the plan and the revision it is based on, change nothing")
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary");
  withTemplateOptions(
    updateCommand,
    new Option("--command <cmd>", "the program each node runs; with it (and the flags after it) the update sets a whole new template (default: keep the group's current one)"),
  )
    .addHelpText(
      "after",
      `${example(
        "client update 3 1",
        "client update 3 2 --max-surge 1 --max-unavailable 0",
        "client --group web update 5 2 --dry-run",
        "client update 5 3 --expect-revision 4 --on-failure rollback --task-timeout 30s --progress-deadline 5m",
        "client update 3 2 --cpu 500m --memory 256Mi",
        "client update 10 2 --canary 2 --min-ready 10s",
        "client update 3 2 --command node --arg examples/chat/chat.mjs --env MODE=prod --health-path /healthz",
      )}
The header states the plan's preview: the fewest available and the most alive nodes it can reach,
and its estimated duration from the group's recent starts and stops.
A template given on update replaces the group's whole template (it is part of the new revision, so
a rollback restores the one before); without template flags the group keeps its current template.
${TEMPLATE_HELP}
With --canary N the graph replaces N nodes, then waits at an await_promotion task until
'client graphs promote' (or --auto-promote-after); tasks that would break the rollout's bounds wait,
shown as 'waiting' with the reason.
With --on-failure rollback, a failed graph's rollback is followed too; the exit code stays 1, since the update failed.
Ctrl-C stops following (exit 130); the graph goes on in the server.
With -o json it prints the SetSpec response on one line, then one {"event": event} per line.
--cpu and --memory reserve that much per node; the server refuses (exit 1, naming what is short) a spec
whose count + max surge nodes do not fit on the host beside the other groups' reservations.
A refused --expect-revision exits 1 and names both revisions: look at 'client history', then update again.
`,
    )
    .action(
      run((context, command) => {
        const [count, version] = command.processedArgs as [string, string];
        return update(context, { ...command.opts(), count, version });
      }),
    );

  program
    .command("history")
    .summary("list the group's spec revisions and what became of each, or show one whole")
    .description(
      "list the group's spec revisions, newest first: count, version, strategy, why it was made (update, scale, rollback to N, auto-rollback to N, stop, clone), the graph that rolled it out with its outcome and how many other graphs it has (+N: repairs, heals, restarts), and its template's command; with --revision N, that revision whole (spec and template), all its graphs, and what changed from the one before",
    )
    .option("--limit <n>", "at most this many, 1 to 1000 (default 20)")
    .option("--revision <n>", "show this revision whole, with a diff against the revision before it")
    .option("--wide", "every column: count and version apart, the strategy, the whole graph id, the template's command, the other graphs")
    .addHelpText(
      "after",
      `${example("client history", "client --group web history --limit 5 -o json", "client history --revision 4")}
With --revision and -o json it prints {"revision": revision, "previous": the revision before or null}.
`,
    )
    .action(run((context, command) => history(context, command.opts())));

  program
    .command("rollback")
    .summary("roll the group back to an earlier revision's spec and template, and follow it")
    .description(
      "store a new revision with an earlier revision's spec and template (default: the last revision whose rollout succeeded), keeping the group's current count unless --with-count, print the plan and follow it like update; exits 0 only if the graph succeeded",
    )
    .argument("[revision]", "the revision to restore (default: the newest earlier revision whose rollout succeeded)")
    .option("--with-count", "restore the revision's count too (default: keep the group's current count)")
    .option("--expect-revision <n>", "refuse unless the group is still at revision n")
    .option("--dry-run", "print the plan, change nothing")
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText(
      "after",
      `${example("client rollback", "client rollback 3 --dry-run", "client rollback 3 --with-count", "client --group web rollback 3 --expect-revision 5 --detach")}
The rollback is an ordinary rolling update to that spec, bounded by its surge and unavailability.
The first line says which revision it restores, and whether the count comes back too.
Ctrl-C stops following (exit 130); the graph goes on in the server.
With -o json it prints the Rollback response on one line, then one {"event": event} per line.
`,
    )
    .action(
      run((context, command) => rollback(context, { ...command.opts(), revision: command.processedArgs[0] as string | undefined })),
    );

  const nodes = program
    .command("nodes")
    .description("the group's nodes")
    .allowExcessArguments(true)
    .action(groupAction("nodes"))
    .addHelpText("after", example("client nodes ls", "client nodes ls --all -o json", "client nodes stats <id>", "client nodes restart <id>"));
  nodes
    .command("ls")
    .description("list the group's nodes (live ones; stopped ones too with --all), with the revision each was started from")
    .option("--all", "include stopped nodes (their AGE counts from when they stopped), and each node's LAST STATE: how it ended (exit status or error) and when")
    .option("--wide", "add what the OS says of each node's process: PID, PORT, CPU, MEMORY, UPTIME, HEALTH")
    .option("-w, --watch", "after the table, print a line for every change of a node's state, until Ctrl-C")
    .addHelpText(
      "after",
      `${example("client nodes ls", "client --group web nodes ls --all", "client nodes ls --wide", "client nodes ls -w")}
When the group's failed nodes keep failing, their replacement backs off, and a last line says so:
crash loop: 7 restarts, next in 40s (last: exited with code 1).
With -w, each change is a line: its time, the node's short id, group, version and new state
(14:03:07  01JDX3…8JNE  web  v2  running), and why a node failed. A broken stream is resumed
after the last event seen, for up to 30s; Ctrl-C ends the watch (exit 0). With -o json it prints
{"snapshot": {"nodes": [...], "sequence": N}}, then one {"event": event} per line.
`,
    )
    .action(run((context, command) => nodesList(context, command.opts())));
  nodes
    .command("describe")
    .summary("show one node's story: its record, last state, restarts and events")
    .description(
      "show one node: its record, the revision and template it was started from, how it last ended (exit status or error, and when), its restarts, and every event that touched it, oldest first",
    )
    .argument("<id>", NODE_ID_HELP)
    .addHelpText(
      "after",
      `${example("client nodes describe 01JDX3AAAAAAAAAAAAAAAAQ1R7", "client nodes describe 01JDX3AAAAAAAAAAAAAAAAQ1R7 -o json")}
With -o json it prints the DescribeNode response. The server keeps a node's last 1000 events.
`,
    )
    .action(run((context, command) => nodesDescribe(context, command.processedArgs[0] as string)));
  nodes
    .command("restart")
    .summary("replace a node with a new one at its version, and follow it")
    .description(
      "replace one node with a new one at the same version, within the group's rollout bounds and under its current revision; prints the plan and follows it like update, exiting 0 only if the graph succeeded",
    )
    .argument("<id>", NODE_ID_HELP)
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText(
      "after",
      `${example("client nodes restart 01JDX3AAAAAAAAAAAAAAAAQ1R7", "client nodes restart 01JDX3AAAAAAAAAAAAAAAAQ1R7 --detach")}
With max surge 0 the node shuts down before its replacement starts; with a surge, the replacement
starts first. A restart brings the node onto the group's current template.
`,
    )
    .action(run((context, command) => nodesRestart(context, command.processedArgs[0] as string, command.opts())));
  nodes
    .command("stop")
    .summary("shut a node down and lower the count by one, and follow it")
    .description(
      "shut this node down and lower the group's count by one, as a new revision; prints it like update and follows it, exiting 0 only if the graph succeeded",
    )
    .argument("<id>", NODE_ID_HELP)
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText("after", example("client nodes stop 01JDX3AAAAAAAAAAAAAAAAQ1R7", "client --group web nodes stop 01JDX3AAAAAAAAAAAAAAAAQ1R7 -o json"))
    .action(run((context, command) => nodesStop(context, command.processedArgs[0] as string, command.opts())));
  nodes
    .command("clone")
    .summary("start one more node like this one and raise the count by one, and follow it")
    .description(
      "start one more node at this node's version and raise the group's count by one, as a new revision; prints it like update and follows it, exiting 0 only if the graph succeeded",
    )
    .argument("<id>", `${NODE_ID_HELP}; it must run the spec's version`)
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText("after", example("client nodes clone 01JDX3AAAAAAAAAAAAAAAAQ1R7"))
    .action(run((context, command) => nodesClone(context, command.processedArgs[0] as string, command.opts())));
  nodes
    .command("kill")
    .summary("make a node fail abruptly, as a crash would")
    .description(
      "make one node fail abruptly (SIGKILL for a process), as a crash would; the server then heals the group with a repair graph",
    )
    .argument("<id>", NODE_ID_HELP)
    .addHelpText(
      "after",
      `${example("client nodes kill 01JDX3AAAAAAAAAAAAAAAAQ1R7", "client graphs ls")}
The repair graph is listed by graphs ls with REASON repair.
`,
    )
    .action(run((context, command) => nodesKill(context, command.processedArgs[0] as string)));
  nodes
    .command("stats")
    .summary("show what the OS says of a node's process")
    .description(
      "show one node with what the OS says of its process: pid, port, cpu, resident memory, uptime, health and its last check, restarts",
    )
    .argument("<id>", NODE_ID_HELP)
    .addHelpText(
      "after",
      `${example("client nodes stats 01JDX3AAAAAAAAAAAAAAAAQ1R7", "client nodes stats 01JDX3AAAAAAAAAAAAAAAAQ1R7 -o json")}
CPU is a share of one core over the last health-check interval. A server with the mock driver
simulates its nodes: they have no process, and nodes stats says so.
`,
    )
    .action(run((context, command) => nodesStats(context, command.processedArgs[0] as string)));
  nodes
    .command("logs")
    .summary("print a node's output, and with -f follow it")
    .description(
      "print what a node's process wrote (stdout and stderr) as it was written; with -f, keep printing what it writes until it stops or Ctrl-C (which exits 0)",
    )
    .argument("<id>", NODE_ID_HELP)
    .option("-f, --follow", "keep printing what the node writes until it stops")
    .option("--tail <lines>", "start this many lines before the end; 0: none (with -f, only what comes next); -1: the whole log (default: the last 64 KiB, in whole lines)")
    .option("--since <duration>", "only the lines the server received in the last duration, like 10m or 1h30m (without --tail: all of them)")
    .option("--timestamps", "begin each line with when the server received it, RFC 3339 in UTC with milliseconds")
    .addHelpText(
      "after",
      `${example(
        "client nodes logs 01JDX3AAAAAAAAAAAAAAAAQ1R7",
        "client nodes logs 01JDX3AAAAAAAAAAAAAAAAQ1R7 -f --tail 100",
        "client nodes logs 01JDX3AAAAAAAAAAAAAAAAQ1R7 --since 10m --timestamps",
      )}
A line is what the node ended with a newline; the server records when it received each piece
of output, which --timestamps shows and --since counts back from (by the server's clock). With
--tail and --since both, a line must be within both. Lines kept by a server older than these
times have no time: --since leaves them out, and --timestamps prints them as they are.
With -o json it prints one {"text": piece} per line. A server with the mock driver keeps no logs:
it refuses, and the client exits 1.
`,
    )
    .action(run((context, command) => nodesLogs(context, command.processedArgs[0] as string, command.opts())));

  const group = program
    .command("group")
    .description("the group's template (what its nodes run), and deleting the group")
    .allowExcessArguments(true)
    .action(groupAction("group"))
    .addHelpText(
      "after",
      example("client group show", "client --group web group set-template --command node --arg examples/chat/chat.mjs", "client --group web group delete"),
    );
  group
    .command("show")
    .description("show the group's template (its own, or the server's default) and its current spec")
    .addHelpText("after", `${example("client group show", "client --group web group show -o json")}
With -o json it prints the GetTemplate response.
`)
    .action(run((context) => groupShow(context)));
  const setTemplate = group
    .command("set-template")
    .summary("set what the group's nodes run, and roll it out")
    .description(
      "set the template the group's nodes start from: the command and its arguments, environment, health check and stop grace. The template is part of the spec: on a group with a spec it is stored as a new revision and rolled out like an update (the plan is printed and followed); on a group without one it applies to the first update",
    );
  withTemplateOptions(setTemplate, new Option("--command <cmd>", "the program each node runs, a path or a name on the server's PATH").makeOptionMandatory())
    .option("--detach", "start the rollout and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText(
      "after",
      `${example(
        "client --group web group set-template --command node --arg examples/chat/chat.mjs --health-path /healthz",
        "client --group api group set-template --command ./api --arg --listen=127.0.0.1:{port} --env MODE=prod --health tcp --stop-grace 10s",
      )}
${TEMPLATE_HELP}
On a group with a spec, set-template behaves like 'client update' with the same count and version and
this template: it exits 0 only if the rollout succeeds (under --on-failure rollback, the rollback is
followed and the exit is still 1). The same flags on 'client update' change the template and the spec at once.
`,
    )
    .action(run((context, command) => groupSetTemplate(context, command.opts())));
  group
    .command("delete")
    .summary("scale the group to 0, then forget it")
    .description(
      "delete the group (--group), as deleting a Deployment does: a new revision scales it to 0, printed and followed like an update, and once that graph succeeds the server forgets the group: its spec, revisions, graphs, template and stopped nodes (it is no longer listed by groups ls, and reads of it are not found). Exits 0 only if the graph succeeded",
    )
    .option("--detach", "start the graph and return without following it")
    .option("--full", "list every task of a plan over 200 tasks, rather than its summary")
    .addHelpText(
      "after",
      `${example("client --group web group delete", "client --group web group delete --detach")}
A graph still running for the group is superseded, as by an update. An update (or rollback) of the
group before the deletion's graph succeeds cancels the deletion. A group with no node left is
forgotten at once. No confirmation is asked, as kubectl delete asks none.
With -o json it prints the DeleteGroup response on one line, then one {"event": event} per line.
`,
    )
    .action(run((context, command) => groupDelete(context, command.opts())));

  const groups = program
    .command("groups")
    .description("every group the server keeps")
    .allowExcessArguments(true)
    .action(groupAction("groups"))
    .addHelpText("after", example("client groups ls", "client groups ls --wide -o json"));
  groups
    .command("ls")
    .summary("list every group, one line each")
    .description(
      "list every group, by name: its desired count and version, its nodes up to date (at the spec's version and template), available (running and past min-ready) and up in all (starting, running or unhealthy), its revision, and its newest graph with that graph's state",
    )
    .option("--wide", "every column: count and version apart, failed nodes, the graph's whole id, why it was made and its tasks done, the group's age")
    .addHelpText(
      "after",
      `${example("client groups ls", "client groups ls --wide", "client groups ls -o json")}
STATE is the newest graph's state, then what else holds: tasks waiting (for a rollout bound or a
promote gate), deleting, crash loop. --group does not apply: every group is listed.
`,
    )
    .action(run((context, command) => groupsList(context, command.opts())));

  program
    .command("status")
    .summary("show the group in detail: its nodes, its graph, what waits and why")
    .description(
      "show the group (--group) in more detail than groups ls: its spec and template, its nodes counted against the spec, its newest graph and how far it got, the tasks that wait and why, its crash loop and its deletion; a group that does not exist is not found (exit 5)",
    )
    .addHelpText(
      "after",
      `${example("client status", "client --group web status -o json")}
With -o json it prints the GetGroup response.
`,
    )
    .action(run((context) => groupStatus(context)));

  const tasks = program
    .command("tasks")
    .description("the tasks of a graph")
    .allowExcessArguments(true)
    .action(groupAction("tasks"))
    .addHelpText("after", example("client tasks watch"));
  tasks
    .command("watch")
    .summary("follow a graph's tasks until it settles")
    .description(
      "show a graph's tasks, then every task event until the graph settles (default: the group's latest graph); exits 0 only if it succeeded",
    )
    .argument("[graph-id]", `the graph to watch: ${GRAPH_ID_HELP}`)
    .option("--full", "list every task of a graph over 200 tasks, rather than its summary")
    .addHelpText(
      "after",
      `${example("client tasks watch", "client tasks watch 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S -o json")}
With -o json it prints one JSON object per line: {"snapshot": graph} first, then {"event": event}.
A broken stream (the server restarted, or cut off a slow watcher) is resumed after the last event
seen, for up to 30s; then the client exits 3. Ctrl-C stops watching (exit 130); the graph goes on.
`,
    )
    .action(run((context, command) => tasksWatch(context, command.processedArgs[0] as string | undefined, command.opts())));

  const graphs = program
    .command("graphs")
    .description("the task graphs of a group")
    .allowExcessArguments(true)
    .action(groupAction("graphs"))
    .addHelpText("after", example("client graphs ls", "client graphs show <id>", "client graphs promote", "client graphs pause", "client graphs cancel"));
  graphs
    .command("ls")
    .description("list the group's graphs, newest first, each with why it was made in history's words (update, scale, rollback to N, auto-rollback to N, stop, clone, repair, heal, restart)")
    .option("--limit <n>", "at most this many, 1 to 1000 (default 20)")
    .addHelpText("after", example("client graphs ls", "client graphs ls --limit 5 -o json"))
    .action(run((context, command) => graphsList(context, command.opts())));
  graphs
    .command("show")
    .description("show one graph with every task, as a table or as a diagram")
    .argument("<id>", `the graph: ${GRAPH_ID_HELP}`)
    .option("--format <format>", "table, dot (Graphviz) or mermaid", "table")
    .addHelpText(
      "after",
      example("client graphs show 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S", "client graphs show 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S --format dot | dot -Tsvg > graph.svg"),
    )
    .action(run((context, command) => graphsShow(context, command.processedArgs[0] as string, command.opts())));
  graphs
    .command("cancel")
    .description("cancel a pending or running graph (default: the group's graph in progress): tasks not started are cancelled, running ones finish")
    .argument("[graph-id]", `the graph to cancel: ${GRAPH_ID_HELP}`)
    .addHelpText("after", `${example("client graphs cancel", "client graphs cancel 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S", "client graphs cancel 01JDX4")}
${IN_PROGRESS_HELP}
`)
    .action(run((context, command) => graphsCancel(context, command.processedArgs[0] as string | undefined)));
  graphs
    .command("promote")
    .summary("let a graph waiting at its promote gate, after its canaries, go on")
    .description(
      "let a graph waiting at its promote gate (after the canaries of an update --canary N) go on with the rest of the rollout (default: the group's graph in progress)",
    )
    .argument("[graph-id]", `the graph to promote: ${GRAPH_ID_HELP}`)
    .addHelpText(
      "after",
      `${example("client graphs promote", "client graphs promote 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S")}
${IN_PROGRESS_HELP}
Refused (exit 1) when the graph has no promote gate waiting, or has settled.
`,
    )
    .action(run((context, command) => graphsPromote(context, command.processedArgs[0] as string | undefined)));
  graphs
    .command("pause")
    .description("pause a running graph (default: the group's graph in progress): running tasks finish, no new task starts until it is resumed")
    .argument("[graph-id]", `the graph to pause: ${GRAPH_ID_HELP}`)
    .addHelpText("after", `${example("client graphs pause", "client graphs pause 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S")}
${IN_PROGRESS_HELP}
`)
    .action(run((context, command) => graphsPause(context, command.processedArgs[0] as string | undefined)));
  graphs
    .command("resume")
    .description("resume a paused graph (default: the group's graph in progress): its ready tasks start again")
    .argument("[graph-id]", `the graph to resume: ${GRAPH_ID_HELP}`)
    .addHelpText("after", `${example("client graphs resume", "client graphs resume 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S")}
${IN_PROGRESS_HELP}
`)
    .action(run((context, command) => graphsResume(context, command.processedArgs[0] as string | undefined)));

  program
    .command("completion")
    .summary("print a shell completion script for bash or zsh")
    .description("print a script that completes the client's commands, subcommands, options and their values in bash or zsh")
    .argument("<shell>", "bash or zsh")
    .addHelpText(
      "after",
      `${example("source <(client completion bash)", "client completion bash > ~/.local/share/bash-completion/completions/client", "source <(client completion zsh)")}
In zsh, load it after compinit (or keep it as _client in a directory of $fpath). It completes no
node or graph ids: that would ask the server on every Tab.
`,
    )
    .action((shell: string) => {
      out.write(completionScript(shellArgument(shell), program));
    });

  program
    .command("help")
    .description("show help for a command, as --help does")
    .argument("[command...]", "the command, like nodes ls")
    .addHelpText("after", example("client help", "client help nodes ls"))
    .action((words: string[]) => {
      let command = program;
      for (const [index, word] of words.entries()) {
        const sub = command.commands.find((candidate) => candidate.name() === word);
        if (!sub) throw unknownCommand(words.slice(0, index).join(" ") || undefined, command, word);
        command = sub;
      }
      command.help();
    });

  program.hook("preAction", (_program, actionCommand) => refuseExcessArguments(actionCommand));
  return program;
}

/** `nodes ls`: a command's words after `client`. */
function commandPath(command: Command): string {
  const words: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) words.unshift(at.name());
  return words.join(" ");
}

/**
 * Refuses stray arguments to a command that runs something (`update 3 2 extra` once applied the
 * update). Commands that only group others take any, to name an unknown subcommand themselves
 * (see groupAction); so every command takes them from commander, and this checks the rest.
 */
function refuseExcessArguments(command: Command): void {
  if (command.commands.length > 0) return;
  const declared = command.registeredArguments;
  if (declared.at(-1)?.variadic) return;
  const extra = command.args.slice(declared.length);
  if (extra.length === 0) return;
  const path = commandPath(command);
  const takes =
    declared.length === 0
      ? "takes no arguments"
      : `takes ${declared.map((argument) => (argument.required ? `<${argument.name()}>` : `[${argument.name()}]`)).join(" ")}`;
  const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : "";
  throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}${more}: ${path} ${takes} (see client ${path} --help)`);
}

/** Runs the client and returns its exit code. */
export async function main(argv: string[]): Promise<ExitCode> {
  const program = buildProgram();
  try {
    process.exitCode = ExitCode.ok;
    try {
      applyBooleanEnvironment(program, process.env);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    await program.parseAsync(argv, { from: "user" });
    return (process.exitCode ?? ExitCode.ok) as ExitCode;
  } catch (error) {
    out.endProgress();
    if (error instanceof CommanderError) {
      // --help and --version end with exit code 0; every other commander error is a usage error, already printed.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const { exitCode, message } = describeError(error, serverForErrors);
    process.stderr.write(`client: ${withGivenOptions(message)}\n`);
    return exitCode;
  }
}

process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  // The reader went away (`client nodes ls | head -1`): nothing more to say.
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});
process.on("SIGINT", () => {
  out.endProgress();
  if (interrupt()) return;
  // One line on what goes on without the client, when the command was in the middle of something.
  const notice = interruptNotice();
  if (notice) process.stderr.write(`${withGivenOptions(notice)}\n`);
  process.exit(130);
});

const exitCode = await main(process.argv.slice(2));
process.exitCode = exitCode;
// Open channels and timers are closed by now; exit anyway, in case grpc-js keeps a handle.
process.stdout.write("", () => process.exit(exitCode));
