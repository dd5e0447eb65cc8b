"""Test fixture: prints the interpreter version (proves the peer venv runs)."""
import sys

print("python", sys.version.split()[0])
print("prefix", sys.prefix)
