#!/usr/bin/env node
// Compiles the Solidity sources with solc-js (standard-JSON mode, imports from node_modules/)
// and writes one artifact per contract: ABI, bytecode, compiler version and the exact
// standard-JSON input, so a block explorer can verify the deployed source.
//
//   node contracts/compile.js                 write registry/artifacts/ModelRegistry.json
//   node contracts/compile.js --check         exit 1 if the committed artifact is stale
//   node contracts/compile.js --out DIR FILE.sol[:Name] ...   compile other sources (tests, bench)
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function findImport(importPath) {
  for (const base of [path.join(ROOT, "node_modules"), ROOT]) {
    const full = path.join(base, importPath);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

function compile(sourcePaths) {
  const sources = {};
  for (const p of sourcePaths) {
    const rel = path.relative(ROOT, path.resolve(p)).split(path.sep).join("/");
    sources[rel] = { content: fs.readFileSync(path.join(ROOT, rel), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    process.exit(2);
  }
  // The explorer-verification input must carry every imported source's text, not a callback.
  const fullInput = { language: "Solidity", sources: {}, settings: SETTINGS };
  for (const file of Object.keys(output.sources)) {
    fullInput.sources[file] = { content: sources[file] ? sources[file].content : findImport(file).contents };
  }
  return { output, fullInput };
}

function artifactFor(output, fullInput, file, name) {
  const c = output.contracts[file] && output.contracts[file][name];
  if (!c) throw new Error(`no contract ${name} in ${file}`);
  return {
    contractName: name,
    sourceName: file,
    compiler: { name: "solc-js", version: solc.version() },
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    standardJsonInput: fullInput,
  };
}

function serialize(artifact) {
  return JSON.stringify(artifact, null, 1) + "\n";
}

function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--out") {
    const outDir = args[1];
    const specs = args.slice(2).map((s) => {
      const [file, name] = s.split(":");
      return { file: path.relative(ROOT, path.resolve(file)).split(path.sep).join("/"), name: name || path.basename(file, ".sol") };
    });
    const { output, fullInput } = compile(specs.map((s) => s.file));
    fs.mkdirSync(outDir, { recursive: true });
    for (const s of specs) {
      fs.writeFileSync(path.join(outDir, `${s.name}.json`), serialize(artifactFor(output, fullInput, s.file, s.name)));
    }
    return;
  }
  const target = path.join(ROOT, "registry", "artifacts", "ModelRegistry.json");
  // the Django-free client verifies against the chain with the same ABI
  const abiTarget = path.join(ROOT, "client", "hallmark", "abi", "ModelRegistry.abi.json");
  // the interface is named too (not only reached through the contract's import): the artifact's
  // standard-JSON input must carry it for explorer verification, whatever the contract imports
  const { output, fullInput } = compile(["contracts/IModelRegistry.sol", "contracts/ModelRegistry.sol"]);
  const artifact = artifactFor(output, fullInput, "contracts/ModelRegistry.sol", "ModelRegistry");
  const outputs = [[target, serialize(artifact)], [abiTarget, JSON.stringify(artifact.abi, null, 1) + "\n"]];
  if (args[0] === "--check") {
    for (const [file, text] of outputs) {
      const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
      if (committed !== text) {
        console.error(`${path.relative(ROOT, file)} is stale: run \`make compile\` and commit it`);
        process.exit(1);
      }
    }
    console.log("artifacts up to date");
    return;
  }
  for (const [file, text] of outputs) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    console.log(`wrote ${path.relative(ROOT, file)} (solc ${solc.version()})`);
  }
}

main();
