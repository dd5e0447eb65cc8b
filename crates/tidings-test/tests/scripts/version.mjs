// Test fixture: prints the Node version (proves the node peer runs).
console.log(`node ${process.version}`);
