#!/usr/bin/env node
// The CLI entry: the compiled TypeScript lives in dist/ (npm run build).
import '../dist/cli.js'
