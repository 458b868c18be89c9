// Compile calc/ and Pyodide's standard library to bytecode for the browser, under Pyodide itself, so the
// bytecode is exactly that of the browser's CPython (magic number included). Run by hooks/pyodide_bundle.py:
//
//   node hooks/pyodide_bundle.mjs <pyodide dir> <python_stdlib.zip> <calc.zip> <stdlib out> <calc out>
//
// Starts Pyodide from node_modules/pyodide, unpacks calc into its site-packages, runs hooks/pyodide_compile.py
// (which imports calc and writes both archives inside Pyodide's file system), and copies them out.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [pyodideDir, stdlibIn, calcIn, stdlibOut, calcOut] = process.argv.slice(2);
const program = fs.readFileSync(fileURLToPath(new URL("./pyodide_compile.py", import.meta.url)), "utf8");
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);

let sitePackages;
const py = await loadPyodide({
  indexURL: `${pyodideDir}/`,
  fsInit: async (_fs, info) => {
    sitePackages = info.sitePackages;
  },
  stdout: () => {},
  stderr: (s) => console.error(s),
});
py.FS.writeFile("/tmp/stdlib.zip", fs.readFileSync(stdlibIn));
py.FS.writeFile("/tmp/calc.zip", fs.readFileSync(calcIn));
py.unpackArchive(new Uint8Array(fs.readFileSync(calcIn)), "zip", { extractDir: sitePackages });
py.runPython(program, { filename: "hooks/pyodide_compile.py" });
fs.writeFileSync(stdlibOut, py.FS.readFile("/tmp/stdlib.out"));
fs.writeFileSync(calcOut, py.FS.readFile("/tmp/calc.out"));
