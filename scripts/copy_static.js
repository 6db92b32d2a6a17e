#!/usr/bin/env node
// Copies the browser libraries the portal uses from node_modules into Django's static files
// (run by `npm ci` / `npm install` as the postinstall step): no CDN, nothing fetched at run time.
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const TARGET = path.join(ROOT, "marketplace", "static", "marketplace", "vendor");
const FILES = [["node_modules/tus-js-client/dist/tus.min.js", "tus.min.js"]];

fs.mkdirSync(TARGET, { recursive: true });
for (const [source, name] of FILES) {
  fs.copyFileSync(path.join(ROOT, source), path.join(TARGET, name));
  console.log(`copied ${source} -> ${path.relative(ROOT, path.join(TARGET, name))}`);
}
