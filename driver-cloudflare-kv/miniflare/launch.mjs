// Starts Miniflare (workerd) for a test, on 127.0.0.1 and the port in $PORT, and runs until it
// gets SIGTERM or SIGINT (the test harness ends it so), then disposes of workerd and exits:
// never SIGKILL it, which would orphan workerd.
//
// Usage: node launch.mjs rest            -> the REST API Worker (rest-api.mjs) over a KV binding
//        node launch.mjs worker DIR      -> a Rust Worker built by worker-build in DIR/build
// Prints "ready http://127.0.0.1:PORT" once it serves requests.
import { Miniflare } from "miniflare";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const [mode, dir] = process.argv.slice(2);
const port = Number(process.env.PORT);
if (!port) throw new Error("set PORT");

const common = { host: "127.0.0.1", port, kvNamespaces: ["SESSIONS"], compatibilityDate: "2025-01-01" };
let options;
if (mode === "rest") {
  options = {
    ...common,
    modules: true,
    // Module paths are taken relative to this root (by default the working directory, which
    // workerd refuses to leave with "..": a test binary of another crate runs elsewhere).
    modulesRoot: here,
    scriptPath: path.join(here, "rest-api.mjs"),
    bindings: {
      ACCOUNT_ID: process.env.CF_ACCOUNT_ID ?? "test-account",
      NAMESPACE_ID: process.env.CF_NAMESPACE_ID ?? "test-namespace",
      API_TOKEN: process.env.CF_API_TOKEN ?? "test-token",
    },
  };
} else if (mode === "worker") {
  options = {
    ...common,
    modules: true,
    modulesRoot: path.join(dir, "build"),
    scriptPath: path.join(dir, "build", "index.js"),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    bindings: { SESSION_SECRET: process.env.SESSION_SECRET ?? "" },
  };
} else {
  throw new Error(`unknown mode ${mode}`);
}

const mf = new Miniflare(options);
const url = await mf.ready;
console.log(`ready ${url}`);

let closing = false;
async function close() {
  if (closing) return;
  closing = true;
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", close);
process.on("SIGINT", close);
