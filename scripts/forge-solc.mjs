// A native-solc stand-in for forge, backed by the pinned solcjs in .tools/ (forge cannot download
// a compiler on machines that reach only package registries). forge calls a compiler two ways:
//   solc --version                       -> "Version: <semver>+commit.<hash>.<platform>"
//   solc [flags...] --standard-json      -> standard JSON in on stdin, standard JSON out on stdout
// Other flags (--base-path, --include-path, --allow-paths) only steer file imports, which the
// callback below resolves relative to the working directory and the given paths.
import { createRequire } from "node:module";
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, ".tools", "package.json"));
const solc = require("solc");

const args = process.argv.slice(2);
if (args.includes("--version")) {
  // solcjs reports "...Emscripten.clang"; forge only parses the semver before the platform.
  const version = solc.version().replace(/\.Emscripten\.clang$/, ".Linux.g++");
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${version}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("forge-solc: only --version and --standard-json are supported\n");
  process.exit(2);
}

const searchPaths = [process.cwd()];
for (const flag of ["--base-path", "--include-path", "--allow-paths"]) {
  args.forEach((arg, i) => {
    if (arg === flag && args[i + 1]) {
      for (const path of args[i + 1].split(",")) searchPaths.push(resolve(path));
    }
  });
}

function findImports(path) {
  const candidates = isAbsolute(path) ? [path] : searchPaths.map((base) => join(base, path));
  for (const candidate of candidates) {
    if (existsSync(candidate)) return { contents: readFileSync(candidate, "utf8") };
  }
  return { error: `file not found: ${path}` };
}

const input = readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
