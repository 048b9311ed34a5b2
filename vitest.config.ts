import { defineConfig } from 'vitest/config'

/** Tests that drive a browser or an external tool: a project of their own, so unit and http runs stay fast. */
const BROWSER_AND_TOOLS = ['test/http/ui.test.ts', 'test/http/schemathesis.test.ts']

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'bench/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          // In-process gateways over real loopback sockets; no external backends needed.
          name: 'http',
          include: ['test/http/**/*.test.ts', 'test/conformance/**/*.test.ts'],
          exclude: BROWSER_AND_TOOLS,
          testTimeout: 60_000,
        },
      },
      {
        test: {
          // The status page in a real browser (playwright-core + chromium) and schemathesis against the
          // management API: slow, and they install tools on first use; `vitest run` still runs them.
          name: 'browser',
          include: BROWSER_AND_TOOLS,
          testTimeout: 60_000,
        },
      },
      {
        test: {
          // Real Kafka, S3 (MinIO) and Kinesis (kinesis-local), started by test/backends.setup.ts.
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/backends-rig.test.ts'],
          globalSetup: ['test/backends.setup.ts'],
          setupFiles: ['test/kafkajs.setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 900_000,
          // Integration files share real backends; run them one file at a time to keep the 2-core box calm.
          fileParallelism: false,
        },
      },
    ],
  },
})
