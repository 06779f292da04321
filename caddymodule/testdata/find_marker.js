// Parses each file named on the command line with JSON.parse and prints the name of each
// file in which a string under a member named "email" contains the marker.
const fs = require("fs");
const marker = "PLAINTEXT-MARKER";

function leaks(v, protectedValue) {
  if (Array.isArray(v)) return v.some((c) => leaks(c, protectedValue));
  if (v !== null && typeof v === "object") {
    return Object.keys(v).some((k) => leaks(v[k], protectedValue || k === "email"));
  }
  return protectedValue && typeof v === "string" && v.includes(marker);
}

for (const file of process.argv.slice(2)) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    continue; // unparsable for this parser: nothing it could read
  }
  if (leaks(doc, false)) console.log(file);
}
