// Compiles l1/contracts/*.sol with the pinned solcjs (installed by install-tools.sh) and writes
// l1/contracts/out/<Contract>.json: ABI, bytecode, deployed bytecode and storage layout.
// The output is deterministic, so the committed artifact must match byte for byte:
//   node scripts/build-contracts.mjs           regenerate
//   node scripts/build-contracts.mjs --check   fail if the committed artifact is stale
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, ".tools", "package.json"));
const solc = require("solc");

const CONTRACTS = ["Rollup"];
// Pinned so the artifact does not change with solc's default; anvil supports it.
const EVM_VERSION = "cancun";

const sourcesDir = join(root, "l1", "contracts");
const outDir = join(sourcesDir, "out");
const sources = {};
for (const file of readdirSync(sourcesDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: readFileSync(join(sourcesDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: the bytecode then depends on the source text only.
    metadata: { bytecodeHash: "none" },
    outputSelection: {
      "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"] },
    },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const check = process.argv.includes("--check");
let stale = false;
for (const name of CONTRACTS) {
  const file = `${name}.sol`;
  const contract = output.contracts[file]?.[name];
  if (!contract) {
    console.error(`no contract ${name} in ${file}`);
    process.exit(1);
  }
  const artifact = {
    contractName: name,
    compiler: `solc ${solc.version()}`,
    evmVersion: EVM_VERSION,
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    storageLayout: contract.storageLayout,
  };
  const text = JSON.stringify(artifact, null, 2) + "\n";
  const target = join(outDir, `${name}.json`);
  if (check) {
    const committed = existsSync(target) ? readFileSync(target, "utf8") : "";
    if (committed !== text) {
      console.error(`${target} is stale: run node scripts/build-contracts.mjs and commit it`);
      stale = true;
    }
  } else {
    writeFileSync(target, text);
    console.log(`wrote ${target} (${contract.evm.deployedBytecode.object.length / 2} bytes deployed)`);
  }
}
if (stale) process.exit(1);
