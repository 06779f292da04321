"""Parses each file named on the command line with Python's json module and prints the
name of each file in which a string under a member named "email" contains the marker."""
import json
import sys

MARKER = "PLAINTEXT-MARKER"


def leaks(value, protected):
    if isinstance(value, list):
        return any(leaks(child, protected) for child in value)
    if isinstance(value, dict):
        return any(leaks(child, protected or key == "email") for key, child in value.items())
    return protected and isinstance(value, str) and MARKER in value


for name in sys.argv[1:]:
    try:
        with open(name, encoding="utf-8", errors="surrogateescape") as f:
            doc = json.load(f)
    except ValueError:
        continue  # unparsable for this parser: nothing it could read
    if leaks(doc, False):
        print(name)
